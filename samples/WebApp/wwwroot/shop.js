// Catalog and product pages: an edit made on any instance reaches this page over SignalR and is applied in place.
// (Reloading would show it too: the edit evicted the cached pages by tag on the shared store.)
(() => {
  'use strict';
  live.on('productChanged', change => {
    let shown = false;
    for (const el of document.querySelectorAll(`[data-product-id="${change.id}"]`)) {
      const name = el.querySelector('#product-name, .product-link');
      const price = el.querySelector('.price');
      if (name) name.textContent = change.name;
      if (price) price.textContent = change.price;
      shown = true;
    }
    const note = document.getElementById('live-note');
    if (shown && note) {
      note.textContent = `${change.name} was edited on instance ${change.instance}: updated live.`;
      note.hidden = false;
    }
  });
  live.start();
})();
