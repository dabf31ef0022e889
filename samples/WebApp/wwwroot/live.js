// A minimal SignalR client (JSON hub protocol over a WebSocket, no negotiation) for the demo's pages, so the demo needs
// no JavaScript package: it connects to /hubs/shop, answers the server's pings, reconnects with a growing delay, and
// calls the handlers registered with live.on(target, fn). A real app would use @microsoft/signalr.
window.live = (() => {
  'use strict';
  const RS = '\x1e'; // the record separator that ends every message of the JSON hub protocol
  const handlers = {};
  const onOpen = [];
  let socket = null;
  let delay = 500;
  let pinger = null;

  const send = message => { if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message) + RS); };

  function connect() {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/hubs/shop`;
    const ws = new WebSocket(url);
    let handshaken = false;
    socket = ws;
    ws.onopen = () => ws.send(JSON.stringify({ protocol: 'json', version: 1 }) + RS);
    ws.onmessage = event => {
      for (const record of String(event.data).split(RS)) {
        if (!record) continue;
        const message = JSON.parse(record);
        if (!handshaken) {
          // The handshake answer: {} or { error }.
          if (message.error) { ws.close(); return; }
          handshaken = true;
          delay = 500;
          document.documentElement.dataset.live = 'connected';
          // The server drops a client it has not heard from for 30 s: a ping every 15 s.
          pinger = setInterval(() => send({ type: 6 }), 15000);
          onOpen.forEach(fn => fn());
          continue;
        }
        if (message.type === 1 && handlers[message.target]) {
          handlers[message.target].forEach(fn => fn(...(message.arguments || [])));
        } else if (message.type === 7) {
          ws.close();
        }
      }
    };
    ws.onclose = () => {
      clearInterval(pinger);
      document.documentElement.dataset.live = 'disconnected';
      if (socket === ws) setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  return {
    // Runs fn on every (re)connection, e.g. to join a group again: a new connection is in no group.
    onConnected(fn) { onOpen.push(fn); },
    on(target, fn) { (handlers[target] = handlers[target] || []).push(fn); },
    // A hub method call that expects no answer (a non-blocking invocation).
    invoke(target, ...args) { send({ type: 1, target, arguments: args }); },
    start() { if (!socket) connect(); },
  };
})();
