"""ssechat backend: an OpenAI-compatible API that streams answers over Server-Sent Events."""
