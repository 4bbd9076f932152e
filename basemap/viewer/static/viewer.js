// basemap viewer: one base layer per tile set found in the served folder (compare renderers with
// the layers control), an optional tile-boundary overlay, and the view fitted to the tiles' bounds.
// URL parameters: ?layer=<id>&grid=1 pick the first layer and show the boundaries;
// ?compare=<id>,<id> shows two layers side by side in two maps that move together.
"use strict";

(function () {
  // Read by the tests (and handy in the console): ready once the first layer's tiles are in.
  const state = { ready: false, gridReady: false, layer: null, tilesLoaded: 0, tileErrors: 0, error: null };
  window.basemapViewer = state;

  const TileBoundaries = L.GridLayer.extend({
    createTile: function (coords) {
      const el = document.createElement("div");
      el.className = "tile-boundary";
      el.textContent = coords.z + "/" + coords.x + "/" + coords.y;
      return el;
    },
  });

  // Leaflet's layers control writes its labels as HTML; a name (from a TileJSON, a folder) is
  // text: escape it through textContent so markup in it stays text.
  function escapeHTML(text) {
    const el = document.createElement("span");
    el.textContent = text;
    return el.innerHTML;
  }

  function makeLayer(desc, maxZoom) {
    const bounds = L.latLngBounds([desc.bounds[1], desc.bounds[0]], [desc.bounds[3], desc.bounds[2]]);
    const options = {
      minZoom: 0,
      maxZoom: maxZoom,
      minNativeZoom: desc.minzoom,
      maxNativeZoom: desc.maxzoom,
      bounds: bounds,
      attribution: "Contains modified Copernicus Sentinel data",
    };
    let layer;
    if (desc.kind === "pmtiles") {
      // The archive is read in the browser with HTTP Range requests (pmtiles JS, vendored).
      layer = pmtiles.leafletRasterLayer(new pmtiles.PMTiles(desc.url), options);
    } else {
      layer = L.tileLayer(desc.url, options);
    }
    layer.on("tileload", function () { state.tilesLoaded += 1; });
    layer.on("tileerror", function () { state.tileErrors += 1; });
    layer.basemapDesc = desc;
    layer.basemapBounds = bounds;
    return layer;
  }

  function label(map, text, position) {
    const box = L.control({ position: position });
    box.onAdd = function () {
      this._div = L.DomUtil.create("div", "viewer-info");
      this._div.textContent = text;
      return this._div;
    };
    box.addTo(map);
    return box;
  }

  function startCompare(descs, ids) {
    const picked = ids.map(function (id) {
      return descs.find(function (d) { return String(d.id) === id; });
    });
    if (picked.length !== 2 || !picked[0] || !picked[1]) {
      throw new Error("?compare needs two layer ids from layers.json, e.g. ?compare=0,1");
    }
    document.body.classList.add("compare");
    const second = document.createElement("div");
    second.id = "map2";
    document.body.appendChild(second);
    const maxZoom = Math.max(picked[0].maxzoom, picked[1].maxzoom) + 2;
    const loaded = [false, false];
    const maps = ["map", "map2"].map(function (el, i) {
      const map = L.map(el, { maxZoom: maxZoom });
      const layer = makeLayer(picked[i], maxZoom);
      layer.on("load", function () {
        loaded[i] = true;
        state.ready = loaded[0] && loaded[1];
      });
      if (i === 0) map.fitBounds(layer.basemapBounds);
      layer.addTo(map);
      label(map, picked[i].name, "bottomleft");
      return map;
    });
    // Keep the two views identical: whichever map moves drives the other.
    let syncing = false;
    maps.forEach(function (map, i) {
      const other = maps[1 - i];
      map.on("move", function () {
        if (syncing) return;
        syncing = true;
        other.setView(map.getCenter(), map.getZoom(), { animate: false });
        syncing = false;
      });
    });
    maps[1].setView(maps[0].getCenter(), maps[0].getZoom(), { animate: false });
    state.map = maps[0];
    state.maps = maps;
    state.layer = picked[0].name + " | " + picked[1].name;
  }

  function start(descs) {
    if (!descs.length) throw new Error("the server found no layers");
    const params = new URLSearchParams(window.location.search);
    if (params.get("compare")) {
      startCompare(descs, params.get("compare").split(","));
      return;
    }
    const maxZoom = Math.max.apply(null, descs.map(function (d) { return d.maxzoom; })) + 2;
    const map = L.map("map", { maxZoom: maxZoom });
    state.map = map;

    const bases = {};
    const layers = descs.map(function (d) {
      const layer = makeLayer(d, maxZoom);
      bases[escapeHTML(d.name)] = layer;
      return layer;
    });
    const wanted = params.get("layer");
    const first = layers.find(function (l) { return String(l.basemapDesc.id) === wanted; }) || layers[0];

    // Boundaries of the stored tiles: past the deepest native zoom they are drawn scaled up.
    const nativeMax = Math.max.apply(null, descs.map(function (d) { return d.maxzoom; }));
    const grid = new TileBoundaries({ pane: "overlayPane", maxZoom: maxZoom, maxNativeZoom: nativeMax });
    grid.on("load", function () { state.gridReady = true; });
    L.control.layers(bases, { "Tile boundaries": grid }, { collapsed: false }).addTo(map);
    L.control.scale().addTo(map);

    const info = L.control({ position: "bottomleft" });
    info.onAdd = function () {
      this._div = L.DomUtil.create("div", "viewer-info");
      return this._div;
    };
    info.update = function () {
      this._div.textContent = (state.layer || "") + " | z" + map.getZoom();
    };
    info.addTo(map);

    // With two layers or more, a link opens the current one side by side with the next.
    const compare = L.control({ position: "bottomright" });
    compare.onAdd = function () {
      this._a = L.DomUtil.create("a", "viewer-info viewer-compare");
      this._a.textContent = "side by side";
      return this._a;
    };
    compare.update = function (desc) {
      const next = descs[(descs.indexOf(desc) + 1) % descs.length];
      this._a.href = "?compare=" + desc.id + "," + next.id;
    };
    if (descs.length > 1) compare.addTo(map);

    map.on("baselayerchange", function (e) {
      state.layer = e.layer.basemapDesc.name;
      info.update();
      if (descs.length > 1) compare.update(e.layer.basemapDesc);
    });
    map.on("zoomend", function () { info.update(); });

    map.fitBounds(first.basemapBounds);
    first.on("load", function () { state.ready = true; });
    first.addTo(map);
    state.layer = first.basemapDesc.name;
    if (params.get("grid") === "1") grid.addTo(map);
    info.update();
    if (descs.length > 1) compare.update(first.basemapDesc);
  }

  // An XYZ layer is loaded through its TileJSON, served from OUT at / as on a static host: its
  // (relative) tile template is resolved against the TileJSON's own URL.
  function fromTileJSON(desc) {
    if (desc.kind !== "xyz" || !desc.tilejson) return Promise.resolve(desc);
    const base = new URL(desc.tilejson, window.location.href);
    return fetch(base.href)
      .then(function (r) {
        if (!r.ok) throw new Error(desc.tilejson + ": HTTP " + r.status);
        return r.json();
      })
      .then(function (doc) {
        // new URL() escapes the braces of {z}/{x}/{y}; decodeURI gives them back to Leaflet.
        desc.url = decodeURI(new URL(doc.tiles[0], base).href);
        return desc;
      });
  }

  fetch("layers.json")
    .then(function (r) {
      if (!r.ok) throw new Error("layers.json: HTTP " + r.status);
      return r.json();
    })
    .then(function (descs) { return Promise.all(descs.map(fromTileJSON)); })
    .then(start)
    .catch(function (err) {
      state.error = String(err);
      console.error("basemap viewer:", err);
    });
})();
