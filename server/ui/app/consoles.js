// The consoles of a VM in the page: its serial console in xterm.js and its display in
// noVNC, each over the API's WebSocket (the token as a subprotocol, `api.js`). A console
// that follows a live migration says so in the stream; a closed one says why.
import { wsProtocols, wsUrl } from "./api.js";
import { h } from "./dom.js";

export function openConsole(pane, name) {
  const status = h("div", { class: "small", id: "console-status" }, "connecting…");
  const screen = h("div", { id: "terminal" });
  pane.append(status, screen);
  let socket = null;
  let term = null;
  let closed = false;
  (async () => {
    const [{ Terminal }, { FitAddon }] = await Promise.all([
      import("/ui/vendor/xterm/lib/xterm.mjs"), import("/ui/vendor/addon-fit/lib/addon-fit.mjs")]);
    if (closed) return;
    term = new Terminal({ convertEol: false, fontSize: 13, scrollback: 5000 });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(screen);
    fit.fit();
    socket = new WebSocket(wsUrl(`/vm/${name}/console`, { force: "true" }), wsProtocols());
    socket.binaryType = "arraybuffer";
    const encoder = new TextEncoder();
    socket.onopen = () => { status.textContent = "connected (the guest's serial port)"; term.focus(); };
    socket.onmessage = (e) => term.write(typeof e.data === "string" ? e.data : new Uint8Array(e.data));
    socket.onclose = (e) => { status.textContent = `closed${e.reason ? `: ${e.reason}` : ""} (code ${e.code})`; };
    term.onData((data) => { if (socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data)); });
  })().catch((err) => { status.textContent = `cannot open the console: ${err.message}`; });
  return () => { closed = true; if (socket) socket.close(); if (term) term.dispose(); };
}

export function openVnc(pane, name) {
  const status = h("div", { class: "small", id: "vnc-status" }, "connecting…");
  const screen = h("div", { id: "screen" });
  pane.append(status, screen);
  let rfb = null;
  let closed = false;
  import("/ui/vendor/novnc/core/rfb.js").then(({ default: RFB }) => {
    if (closed) return;
    rfb = new RFB(screen, wsUrl(`/vm/${name}/vnc`), { wsProtocols: wsProtocols() });
    rfb.scaleViewport = true;
    rfb.addEventListener("connect", () => { status.textContent = "connected (VNC)"; });
    rfb.addEventListener("disconnect", (e) => {
      status.textContent = e.detail.clean ? "closed" : "the connection was lost";
    });
  }).catch((err) => { status.textContent = `cannot open the display: ${err.message}`; });
  return () => { closed = true; if (rfb) rfb.disconnect(); };
}
