() => {
  // ssechat's page script (Gradio runs it once the app is loaded).
  // 1. The settings sidebar is open on wide windows and closed on narrow ones, and
  //    closes by itself when the window shrinks below the breakpoint.
  // 2. The conversation stays pinned to its end while the answer below it grows
  //    (the conversation's box shrinks), unless the user scrolled up to read.
  const BREAKPOINT = SIDEBAR_BREAKPOINT_PX;
  const wide = () => window.innerWidth >= BREAKPOINT;
  const setSidebar = (open) => {
    const sidebar = document.getElementById("ssechat-sidebar");
    if (!sidebar) return false;
    if (sidebar.classList.contains("open") !== open) {
      sidebar.querySelector(".toggle-button")?.click();
    }
    return true;
  };
  const started = performance.now();
  const initSidebar = () => {
    if (!setSidebar(wide()) && performance.now() - started < 20000) {
      setTimeout(initSidebar, 50);
    }
  };
  initSidebar();
  let wasWide = wide();
  window.addEventListener("resize", () => {
    const isWide = wide();
    if (isWide !== wasWide && !isWide) setSidebar(false);
    wasWide = isWide;
  });

  // 3. The chat column fills the window below the header, whatever the header's height.
  const fit = () => {
    const column = document.getElementById("chat-col");
    if (!column || column.offsetParent === null) return;
    const top = column.getBoundingClientRect().top + window.scrollY;
    document.documentElement.style.setProperty("--ssechat-chat-top", `${Math.round(top)}px`);
  };
  window.addEventListener("resize", fit);
  const fitWhenReady = () => {
    const header = document.getElementById("ssechat-header");
    if (!header) {
      if (performance.now() - started < 20000) setTimeout(fitWhenReady, 50);
      return;
    }
    new ResizeObserver(fit).observe(header);
    fit();
  };
  fitWhenReady();

  let pinned = null;
  const pin = (scroller) => {
    pinned = scroller;
    let atEnd = true;
    scroller.addEventListener("scroll", () => {
      atEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
    });
    new ResizeObserver(() => {
      if (atEnd) scroller.scrollTop = scroller.scrollHeight;
    }).observe(scroller);
  };
  const findScroller = () => {
    if (pinned && pinned.isConnected) return;
    const scroller = document.querySelector("#chat-bot .bubble-wrap");
    if (scroller) pin(scroller);
  };
  new MutationObserver(findScroller).observe(document.body, {childList: true, subtree: true});
  findScroller();
}
