"""``BackendLink``: the UI's connection to the API (one ``ChatClient``, made on first use)."""

from __future__ import annotations

from ui.client import ChatClient, make_http_client

__all__ = ["BackendLink"]


class BackendLink:
    """Made lazily so the ``httpx.AsyncClient`` belongs to the server's event
    loop (Gradio runs async handlers there), not to whatever loop imported us.
    """

    def __init__(
        self,
        base_url: str,
        *,
        label: str,
        api_key: str | None = None,
        read_timeout_s: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.label = label
        self._api_key = api_key
        self._read_timeout_s = read_timeout_s
        self._client: ChatClient | None = None

    def client(self) -> ChatClient:
        if self._client is None:
            http = make_http_client(self.base_url, read_timeout_s=self._read_timeout_s)
            self._client = ChatClient(
                http, api_key=self._api_key, read_timeout_s=self._read_timeout_s
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.http.aclose()
