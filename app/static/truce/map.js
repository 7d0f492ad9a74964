/*
 * Truce map: reports, findings and tracks drawn from the columnar payload that app/mapview/payload.py
 * writes, and a time slider over them, the zones and the reference lines.
 *
 * Needs Leaflet and Leaflet.markercluster, nothing else. Served by the API, it fetches each
 * view's data from /map/data and listens to /events for new incidents; standalone, it never
 * touches the network.
 * TruceMap.init(map, layers, payload, options) returns a small API (also window.truce) that the
 * browser tests use to read what is shown.
 */
(function (global) {
  "use strict";

  var ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  var COLOR = /^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,20})$/;

  function esc(value) {
    return String(value === null || value === undefined ? "" : value).replace(/[&<>"']/g, function (c) {
      return ESCAPES[c];
    });
  }

  function safeColor(value) {
    return COLOR.test(String(value)) ? String(value) : "#666666";
  }

  function fmtTime(t) {
    if (t === null || t === undefined) {
      return "open";
    }
    return new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function fmtNumber(x, digits) {
    return Number(x).toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 0 : digits });
  }

  function fmtDuration(seconds) {
    var s = Math.round(seconds);
    var d = Math.floor(s / 86400);
    var h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60);
    if (d) {
      return d + " d " + h + " h";
    }
    if (h) {
      return h + " h " + m + " min";
    }
    return m + " min";
  }

  // First index whose value is greater than x, in an ascending array.
  function upperBound(values, x) {
    var lo = 0;
    var hi = values.length;
    while (lo < hi) {
      var mid = (lo + hi) >>> 1;
      if (values[mid] <= x) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  function table(rows) {
    return (
      "<table>" +
      rows
        .filter(function (row) {
          return row[1] !== null && row[1] !== undefined && row[1] !== "";
        })
        .map(function (row) {
          return "<tr><th>" + esc(row[0]) + "</th><td>" + row[1] + "</td></tr>";
        })
        .join("") +
      "</table>"
    );
  }

  /*
   * Layers each with a time, in time order, in one group: `update(from, to)` shows those with
   * from < t <= to (from null: every t <= to), adding and removing only the difference.
   */
  // Above this many uncertainty circles, they are drawn on a canvas instead of as SVG paths.
  var MANY_CIRCLES = 2000;

  function TimedSet(group, times, layers) {
    this.group = group;
    this.times = times;
    this.layers = layers;
    this.lo = 0;
    this.hi = 0;
  }

  TimedSet.prototype.update = function (from, to) {
    var lo = from === null ? 0 : upperBound(this.times, from);
    var hi = upperBound(this.times, to);
    var a = this.lo;
    var b = this.hi;
    var add = [];
    var remove = [];
    var i;
    if (lo === a && hi === b) {
      return;
    }
    for (i = a; i < Math.min(b, lo); i++) remove.push(this.layers[i]);
    for (i = Math.max(a, hi); i < b; i++) remove.push(this.layers[i]);
    for (i = lo; i < Math.min(hi, a); i++) add.push(this.layers[i]);
    for (i = Math.max(lo, b); i < hi; i++) add.push(this.layers[i]);
    var group = this.group;
    if (typeof group.addLayers === "function") {
      // A marker cluster: batch calls; a big change is faster as clear-and-refill.
      if (remove.length > (b - a) / 2) {
        group.clearLayers();
        group.addLayers(this.layers.slice(lo, hi));
      } else {
        if (remove.length) group.removeLayers(remove);
        if (add.length) group.addLayers(add);
      }
    } else {
      remove.forEach(function (layer) {
        group.removeLayer(layer);
      });
      add.forEach(function (layer) {
        group.addLayer(layer);
      });
    }
    this.lo = lo;
    this.hi = hi;
  };

  TimedSet.prototype.count = function () {
    return this.hi - this.lo;
  };

  // How many shown layers are flagged, from `prefix` (prefix[k]: flagged among the first k).
  TimedSet.prototype.countFlagged = function (prefix) {
    return prefix[this.hi] - prefix[this.lo];
  };


  // --- where a view's data comes from --------------------------------------------------------

  function remoteSource(src) {
    return {
      get: function (kind, params, signal) {
        var q = [];
        var all = Object.assign({}, params);
        if (src.party) all.party = src.party;
        if (src.zone) all.zone = src.zone;
        Object.keys(all).forEach(function (k) {
          if (all[k] !== null && all[k] !== undefined) q.push(encodeURIComponent(k) + "=" + encodeURIComponent(all[k]));
        });
        // The browser revalidates with the ETag: an unchanged view costs a 304.
        return fetch(src.url + "/" + kind + "?" + q.join("&"), {
          signal: signal,
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        }).then(function (response) {
          if (!response.ok) {
            return response.text().then(function (text) {
              throw new Error(kind + ": HTTP " + response.status + " " + text.slice(0, 200));
            });
          }
          return response.json();
        });
      },
      // One report's notes, for its popup (the view's columns leave them out to stay small).
      detail: function (id) {
        return fetch(src.url + "/reports/" + encodeURIComponent(id), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        }).then(function (response) {
          return response.ok ? response.json() : null;
        });
      },
    };
  }

  function embeddedSource(E) {
    return global.TruceSeason ? global.TruceSeason.source(E) : null;
  }

  /*
   * Answers kept by query (the last `size`): zooming back out, or the slider back to a stop
   * already seen, draws at once instead of waiting for the server (or for season.js to count
   * a million reports again). `ttl` ms bounds how stale a kept answer of a server may be (new
   * reports need not raise an incident); `forget()` drops them all (a live event).
   */
  function cachedSource(inner, size, ttl) {
    var kept = new Map();
    function key(kind, params) {
      return kind + "?" + Object.keys(params).sort().map(function (k) {
        return k + "=" + params[k];
      }).join("&");
    }
    return {
      get: function (kind, params, signal) {
        var k = key(kind, params);
        var hit = kept.get(k);
        var now = Date.now();
        // A pending answer whose caller gave up is asked for again, not shared.
        var given = hit && !hit.done && hit.signal && hit.signal.aborted;
        if (hit && !given && (!ttl || now - hit.at < ttl)) {
          kept.delete(k);
          kept.set(k, hit); // most recently used last
          return hit.answer;
        }
        var entry = { at: now, signal: signal, answer: null, done: false };
        entry.answer = inner.get(kind, params, signal).then(function (answer) {
          entry.done = true;
          return answer;
        }).catch(function (err) {
          if (kept.get(k) === entry) kept.delete(k);
          throw err;
        });
        kept.set(k, entry);
        while (kept.size > size) kept.delete(kept.keys().next().value);
        return entry.answer;
      },
      forget: function () {
        kept.clear();
      },
      // A report's notes: asked once per popup (see popupOf), not kept here.
      detail: inner.detail,
    };
  }

  function init(map, layers, P, options) {
    options = options || {};
    var R = P.reports;
    var F = P.findings;
    var n = R.t.length;
    var parties = P.parties.map(function (p) {
      return { code: p.code, name: p.name, color: safeColor(p.color) };
    });

    // A view's data (from /map/data/reports, or cut from an embedded season) replaces the
    // page's columns: the popups, markers and tracks below read them through P, R and F.
    function useData(D) {
      ["reports", "findings", "tracks", "events", "units", "zones", "sources", "dashes"].forEach(
        function (key) {
          if (D[key] !== undefined) P[key] = D[key];
        }
      );
      R = P.reports;
      F = P.findings;
      n = R.t.length;
      if (D.parties) {
        parties = D.parties.map(function (p) {
          return { code: p.code, name: p.name, color: safeColor(p.color) };
        });
      }
    }

    if (map.attributionControl) {
      map.attributionControl.setPrefix("Leaflet");
    }
    if (options.offline) {
      map.getContainer().classList.add("truce-offline");
    }

    // --- popups -------------------------------------------------------------------------------

    function partyLabel(index) {
      var p = parties[index];
      if (!p) return "";
      var swatch = '<span class="truce-swatch" style="background:' + p.color + '"></span>';
      return swatch + esc(p.code) + (p.name && p.name !== p.code ? " (" + esc(p.name) + ")" : "");
    }

    // Depths come rounded to a step that fits the verdict's u (report + zone boundary).
    function depthText(depth, u) {
      var text = depth >= 0 ? fmtNumber(depth) + " m inside" : fmtNumber(-depth) + " m outside";
      return u > 0 ? text + " (± " + fmtNumber(u) + " m)" : text;
    }

    function findingsHtml(i) {
      var first = F.offsets[i];
      var last = F.offsets[i + 1];
      if (first === last) {
        return '<p class="truce-none">No zone in force within warning distance.</p>';
      }
      var rows = [];
      for (var j = first; j < last; j++) {
        var verdict = P.verdicts[F.verdict[j]];
        var violation = F.violation[j] === 1;
        rows.push(
          '<tr class="truce-verdict-' + esc(verdict) + (violation ? " truce-violation" : "") + '">' +
            "<td>" + esc(P.zones[F.zone[j]]) + "</td>" +
            "<td>" + esc(verdict) + (violation ? " <strong>VIOLATION</strong>" : "") + "</td>" +
            "<td>" + depthText(F.depth[j], F.u[j]) + "</td></tr>"
        );
      }
      return (
        '<table class="truce-findings"><tr><th>Zone</th><th>Verdict</th><th>Depth</th></tr>' +
        rows.join("") +
        "</table>"
      );
    }

    function reportHtml(i) {
      var status = P.statuses[R.status[i]];
      var kind = P.kinds[R.kind[i]];
      var heading = esc(kind) + " · " + esc(parties[R.party[i]] ? parties[R.party[i]].code : "");
      return (
        '<div class="truce-popup truce-popup-' + esc(status) + '">' +
        "<h4>" + heading + (status === "violation" ? ' <span class="truce-badge">violation</span>' : "") +
        (status === "warning" ? ' <span class="truce-badge truce-badge-warning">approaching</span>' : "") +
        "</h4>" +
        table([
          ["Report", esc(R.id[i])],
          ["Party", partyLabel(R.party[i])],
          ["Observed", esc(fmtTime(R.t[i]))],
          ["Kind", esc(kind)],
          ["Source", R.source[i] >= 0 ? esc(P.sources[R.source[i]]) : "not given"],
          ["Confidence", R.conf[i] >= 0 ? esc(P.confidences[R.conf[i]]) : "not given"],
          ["Uncertainty", fmtNumber(R.u[i], 1) + " m"],
          ["Unit", R.unit[i] >= 0 ? esc(P.units[R.unit[i]]) : null],
          ["Notes", R.notes && R.notes[i] ? esc(R.notes[i]) : null],
          ["Position", fmtNumber(R.lon[i], 5) + ", " + fmtNumber(R.lat[i], 5) + " (lon, lat)"],
        ]) +
        "<h5>Findings</h5>" +
        findingsHtml(i) +
        "</div>"
      );
    }

    // Notes by report id, fetched when a popup opens (the view's columns leave them out).
    var notesOf = {};

    function popupOf(layer) {
      var i = layer.options.truceIndex;
      if ((R.notes && R.notes.length) || !source || !source.detail) return reportHtml(i);
      var id = R.id[i];
      var box = document.createElement("div");
      box.innerHTML = reportHtml(i);
      var rows = box.querySelector("table");
      if (notesOf[id] && rows) {
        // Set as text: a note is never read as HTML.
        var row = document.createElement("tr");
        var th = document.createElement("th");
        var td = document.createElement("td");
        th.textContent = "Notes";
        td.textContent = notesOf[id];
        row.appendChild(th);
        row.appendChild(td);
        (rows.tBodies[0] || rows).appendChild(row);
      } else if (!(id in notesOf)) {
        notesOf[id] = null;
        source.detail(id).then(function (d) {
          notesOf[id] = d && d.notes ? d.notes : "";
          var popup = layer.getPopup();
          // Leaflet calls popupOf again: the notes are drawn from notesOf.
          if (notesOf[id] && popup && popup.isOpen()) popup.update();
        }).catch(function () {
          delete notesOf[id];
        });
      }
      return box;
    }

    // An empty marker cluster group still animates each zoom, and its animation forces a
    // layout of the whole page (~50 ms with a thousand counts and their labels on it). With no
    // marker in it there is nothing to animate: it only updates its bounds.
    ["reports", "violations", "warnings"].forEach(function (name) {
      var group = layers[name];
      if (!group || typeof group._mergeSplitClusters !== "function") return;
      var merge = group._mergeSplitClusters;
      group._mergeSplitClusters = function () {
        var top = this._topClusterLevel;
        if (top && top.getChildCount() === 0) {
          this._moveEnd();
          return;
        }
        merge.apply(this, arguments);
      };
    });

    // The drawn layers of the current data (rebuilt whole when a view's data arrives).
    var sets = {};
    var certainPrefix = [0];
    var tracks = [];
    var eventSet = null;

    function clearDrawn() {
      ["reports", "violations", "warnings", "uncertainty", "tracks"].forEach(function (name) {
        if (layers[name]) layers[name].clearLayers();
      });
    }

    function buildLayers() {
      clearDrawn();
      // --- report markers -----------------------------------------------------------------------

      var icons = {};

      function iconFor(i) {
        var status = R.status[i];
        var key = R.party[i] + "|" + R.kind[i] + "|" + R.source[i] + "|" + R.conf[i] + "|" + status;
        if (!icons[key]) {
          var party = parties[R.party[i]];
          var source = R.source[i];
          var dash = source >= 0 ? P.dashes[source] : "";
          var opacity = R.conf[i] >= 0 ? P.opacity[R.conf[i]] : P.opacity[P.opacity.length - 1];
          var size = P.sizes[status];
          var svg = P.templates[status]
            .replace("__SHAPE__", P.shapes[R.kind[i]])
            .replace("__FILL__", party ? party.color : "#666666")
            .replace("__OPACITY__", String(opacity))
            .replace("__DASH__", dash);
          icons[key] = L.divIcon({
            html: svg,
            className: "truce-report truce-" + P.statuses[status],
            iconSize: [size, size],
            iconAnchor: [size / 2, size / 2],
            popupAnchor: [0, -size / 2],
          });
        }
        return icons[key];
      }

      // Many uncertainty circles (a season judged against zones whose lines are uncertain has
      // thousands of `possible` reports) are drawn on one canvas: as SVG, each is a DOM element,
      // and 10,000 of them hold the first markers back by seconds.
      var circleCount = 0;
      for (var c = 0; c < n; c++) {
        if (R.possible[c] === 1 && R.u[c] > 0) circleCount += 1;
      }
      var circleRenderer = circleCount > MANY_CIRCLES ? L.canvas({ padding: 0.5 }) : undefined;
      var buckets = { reports: [], violations: [], warnings: [], uncertainty: [] };
      var bucketTimes = { reports: [], violations: [], warnings: [], uncertainty: [] };
      // Violations inside (certain) among the violation markers, as running totals.
      certainPrefix = [0];
      for (var i = 0; i < n; i++) {
        var latlng = [R.lat[i], R.lon[i]];
        var status = R.status[i];
        var marker = L.marker(latlng, {
          icon: iconFor(i),
          truceIndex: i,
          riseOnHover: true,
          zIndexOffset: status === 3 ? 1000 : status === 2 ? 500 : 0,
          title: P.kinds[R.kind[i]] + " · " + (parties[R.party[i]] ? parties[R.party[i]].code : "") + " · " + fmtTime(R.t[i]),
        });
        marker.bindPopup(popupOf, { maxWidth: 380 });
        var bucket = status === 3 ? "violations" : status === 2 ? "warnings" : "reports";
        buckets[bucket].push(marker);
        bucketTimes[bucket].push(R.t[i]);
        if (bucket === "violations") {
          certainPrefix.push(certainPrefix[certainPrefix.length - 1] + (R.certain[i] === 1 ? 1 : 0));
        }
        if (R.possible[i] === 1 && R.u[i] > 0) {
          var party = parties[R.party[i]];
          var circle = L.circle(latlng, {
            radius: R.u[i],
            color: status === 3 ? P.colors.violation : party ? party.color : "#666666",
            weight: 1.5,
            dashArray: "4 4",
            fillOpacity: 0.08,
            truceIndex: i,
            className: "truce-uncertainty",
            renderer: circleRenderer,
          });
          circle.bindPopup(popupOf, { maxWidth: 380 });
          buckets.uncertainty.push(circle);
          bucketTimes.uncertainty.push(R.t[i]);
        }
      }
      sets = {};
      Object.keys(buckets).forEach(function (name) {
        if (layers[name]) {
          sets[name] = new TimedSet(layers[name], bucketTimes[name], buckets[name]);
        }
      });

      // --- tracks and their events ---------------------------------------------------------------

      function trackHtml(k) {
        var track = P.tracks[k];
        var rows = track.rows;
        var unit = track.unit >= 0 ? P.units[track.unit] : "";
        var summary = track.summary
          .map(function (s) {
            return (
              "<h5>" + esc(s.zone) + "</h5>" +
              table([
                ["Entered", esc(fmtTime(s.entered))],
                ["Last exited", s.exited === null ? "not yet" : esc(fmtTime(s.exited))],
                ["Time inside", esc(fmtDuration(s.dwell))],
                ["Withdrawn", s.withdrawn ? "yes (latest report outside)" : "no (latest report inside)"],
                [
                  "Back near the start",
                  s.distance === null
                    ? "no position before entering"
                    : (s.back ? "yes" : "no") + ", " + fmtNumber(s.distance) + " m from it",
                ],
              ])
            );
          })
          .join("");
        return (
          '<div class="truce-popup"><h4>Track: ' + esc(unit) + "</h4>" +
          table([
            ["Party", partyLabel(track.party)],
            ["Reports", String(rows.length)],
            ["First", esc(fmtTime(R.t[rows[0]]))],
            ["Latest", esc(fmtTime(R.t[rows[rows.length - 1]]))],
          ]) +
          (summary || '<p class="truce-none">Never inside a zone.</p>') +
          "</div>"
        );
      }

      tracks = (P.tracks || []).map(function (track, k) {
        var party = parties[track.party];
        var line = L.polyline([], {
          color: party ? party.color : "#555555",
          weight: 3,
          opacity: 0.9,
          dashArray: "7 4",
          className: "truce-track",
        });
        line.bindPopup(function () {
          return trackHtml(k);
        }, { maxWidth: 380 });
        return {
          line: line,
          latlngs: track.rows.map(function (r) {
            return [R.lat[r], R.lon[r]];
          }),
          times: track.rows.map(function (r) {
            return R.t[r];
          }),
          lo: 0,
          hi: 0,
          shown: false,
        };
      });

      var E = P.events;
      var eventMarkers = E.t.map(function (t, e) {
        var r = E.report[e];
        var exited = E.kind[e] === 1;
        var track = P.tracks[E.track[e]];
        var unit = track && track.unit >= 0 ? P.units[track.unit] : "";
        var marker = L.marker([R.lat[r], R.lon[r]], {
          icon: L.divIcon({
            html: '<span class="truce-event ' + (exited ? "truce-exited" : "truce-entered") + '">' +
              (exited ? "OUT" : "IN") + "</span>",
            className: "truce-event-icon",
            iconSize: [34, 16],
            iconAnchor: [-10, 8],
          }),
          zIndexOffset: 800,
          keyboard: false,
        });
        marker.bindPopup(
          '<div class="truce-popup"><h4>' + esc(unit) + (exited ? " exited " : " entered ") + esc(E.zone[e]) +
            "</h4>" +
            table([
              ["When", esc(fmtTime(t))],
              ["Party", track ? partyLabel(track.party) : ""],
              ["Report", esc(R.id[r])],
            ]) +
            "</div>"
        );
        return marker;
      });
      eventSet = layers.tracks ? new TimedSet(layers.tracks, E.t, eventMarkers) : null;
    }
    buildLayers();

    function updateTracks(from, to) {
      if (!layers.tracks) return 0;
      var shown = 0;
      tracks.forEach(function (track) {
        var lo = from === null ? 0 : upperBound(track.times, from);
        var hi = upperBound(track.times, to);
        if (lo !== track.lo || hi !== track.hi) {
          track.line.setLatLngs(track.latlngs.slice(lo, hi));
          track.lo = lo;
          track.hi = hi;
        }
        var visible = hi - lo > 0;
        if (visible !== track.shown) {
          if (visible) layers.tracks.addLayer(track.line);
          else layers.tracks.removeLayer(track.line);
          track.shown = visible;
        }
        if (visible) shown += 1;
      });
      return shown;
    }

    // --- zones and reference features with a validity ----------------------------------------

    var timed = (layers.timed || []).map(function (geo) {
      return geo.getLayers().map(function (layer) {
        var p = (layer.feature && layer.feature.properties) || {};
        return {
          geo: geo,
          layer: layer,
          from: p._from === undefined ? null : p._from,
          to: p._to === undefined ? null : p._to,
          shown: true,
          zone: p.kind !== undefined && p.version !== undefined,
        };
      });
    });

    function updateTimed(t) {
      var zones = 0;
      timed.forEach(function (items) {
        items.forEach(function (item) {
          var on = (item.from === null || item.from <= t) && (item.to === null || t < item.to);
          if (on !== item.shown) {
            if (on) item.geo.addLayer(item.layer);
            else item.geo.removeLayer(item.layer);
            item.shown = on;
          }
          if (on && item.zone) zones += 1;
        });
      });
      return zones;
    }

    // --- the slider ---------------------------------------------------------------------------

    var steps = P.steps;
    var state = { step: 0, window: 0, time: P.opening, counts: {} };

    function apply() {
      var t = steps.length ? steps[state.step] : P.opening;
      var from = state.window > 0 ? t - state.window : null;
      state.time = t;
      var zones = updateTimed(t);
      if (source) {
        state.zones = zones;
        render();
        fetchView();
        return;
      }
      Object.keys(sets).forEach(function (name) {
        sets[name].update(from, t);
      });
      var shownTracks = updateTracks(from, t);
      if (eventSet) eventSet.update(from, t);
      state.counts = {
        reports: (sets.reports ? sets.reports.count() : 0) +
          (sets.violations ? sets.violations.count() : 0) +
          (sets.warnings ? sets.warnings.count() : 0),
        plain: sets.reports ? sets.reports.count() : 0,
        violations: sets.violations ? sets.violations.count() : 0,
        violationsInside: sets.violations ? sets.violations.countFlagged(certainPrefix) : 0,
        warnings: sets.warnings ? sets.warnings.count() : 0,
        possible: sets.uncertainty ? sets.uncertainty.count() : 0,
        zones: zones,
        tracks: shownTracks,
        events: eventSet ? eventSet.count() : 0,
      };
      state.counts.violationsPossible = state.counts.violations - state.counts.violationsInside;
      render();
    }


    // --- data by view: fetched from /map/data (or cut from an embedded season) ---------------

    var source = null;
    if (options.source && options.source.url) {
      // A server's answers are kept 30 s (the ETag still guards anything older).
      source = cachedSource(remoteSource(options.source), 64, 30000);
    } else if (options.source && options.source.embedded) {
      // An embedded season never changes: its answers are kept as long as there is room.
      var embedded = embeddedSource(options.source.embedded);
      source = embedded ? cachedSource(embedded, 64, 0) : null;
    }
    // Below this zoom the view is counted per grid cell; from it on, reports are drawn one by
    // one (clustered) as long as the view holds at most LIMIT of them, else cells again.
    var CELL_ZOOM = options.cellZoom || 11;
    // Markers are DOM elements: past ~1,500 in view, counts per cell read better and draw faster.
    var LIMIT = options.limit || 1500;
    var SNAP_PX = 64;
    var cellLayer = L.featureGroup();
    // One popup handler for every cell (a thousand bound popups each took their listeners).
    cellLayer.on("click", function (e) {
      var cell = e.layer;
      if (!cell || !cell.options.truceAnswer) return;
      L.popup({ maxWidth: 320 })
        .setLatLng(cell.getLatLng())
        .setContent(cellHtml(cell.options.truceCount, cell.options.truceCell, cell.options.truceAnswer))
        .openOn(map);
    });
    var canvas = L.canvas({ padding: 0.3 });
    // The overview's tracks on a canvas of their own, in a pane under the counts: new counts
    // then repaint only the counts, not the thousands of track vertices under them (and back).
    if (!map.getPane("truceThinTracks")) {
      map.createPane("truceThinTracks").style.zIndex = 390;
    }
    var trackCanvas = L.canvas({ padding: 0.3, pane: "truceThinTracks" });
    var thinTracks = [];
    var thinTracksAnswer = null;
    // Whether report markers (rather than counts) are what is drawn: the page starts with its
    // inline payload's.
    var reportsShown = true;
    // The last view's reports and area: a guess of whether the next one will be counted.
    var lastView = null;
    var fetchSeq = 0;
    var inflight = null;
    var loading = 0;
    var moveTimer = null;
    var lastError = null;

    function iso(seconds) {
      return new Date(seconds * 1000).toISOString();
    }

    function viewParams() {
      // A margin around the view: a small pan needs no new data to look complete. Its edges
      // snapped outwards to a grid of SNAP_PX screen pixels: a view a few pixels off (a zoom
      // back out, a small pan) asks the same query, which the kept answers then have.
      var b = map.getBounds().pad(0.15);
      var step = (SNAP_PX * 360) / (256 * Math.pow(2, map.getZoom()));
      var box = [
        Math.max(-180, Math.floor(b.getWest() / step) * step),
        Math.max(-90, Math.floor(b.getSouth() / step) * step),
        Math.min(180, Math.ceil(b.getEast() / step) * step),
        Math.min(90, Math.ceil(b.getNorth() / step) * step),
      ];
      var t = state.time;
      var params = {
        bbox: box.map(function (x) {
          return x.toFixed(5);
        }).join(","),
        until: iso(t + 1),
      };
      if (state.window > 0) {
        params.since = iso(t - state.window + 1);
      } else if (options.query && options.query.since) {
        params.since = options.query.since;
      }
      return params;
    }

    function cellHtml(c, k, D) {
      var C = D.cells;
      var np = D.parties.length;
      var rows = [["Reports", fmtNumber(C.count[k])]];
      rows.push(["Violations inside", String(C.inside[k])]);
      rows.push(["Violations possible", String(C.possible[k])]);
      rows.push(["Warnings", String(C.warnings[k])]);
      for (var j = 0; j < np; j++) {
        var m = C.byParty[k * np + j];
        if (m > 0) rows.push([D.parties[j].code, fmtNumber(m)]);
      }
      return '<div class="truce-popup"><h4>' + fmtNumber(c) + " reports here</h4>" +
        table(rows.map(function (r) {
          return [r[0], esc(r[1])];
        })) + '<p class="truce-none">Zoom in to see them one by one.</p></div>';
    }

    // Cells are drawn on a canvas (a thousand of them as DOM elements took seconds to zoom);
    // the counts of the biggest ones are written on them as labels.
    var CELL_COLORS = { inside: "#c8102e", possible: "#e66100", warning: "#d6a000", plain: "#3c3c3c" };
    var MAX_CELL_LABELS = 150;

    var cellsAnswer = null;
    var drawnZoom = null;

    function drawCells(D) {
      // The same answer (the slider back and forth over one stop): the cells drawn stay.
      if (D === cellsAnswer && map.hasLayer(cellLayer) && drawnZoom === map.getZoom()) return;
      cellsAnswer = D;
      drawnZoom = map.getZoom();
      cellLayer.clearLayers();
      var C = D.cells;
      var order = [];
      for (var k = 0; k < C.count.length; k++) {
        var c = C.count[k];
        var level = C.inside[k] > 0 ? "inside" : C.possible[k] > 0 ? "possible" : C.warnings[k] > 0 ? "warning" : "plain";
        var radius = Math.round(9 + 3.5 * Math.log10(c));
        var circle = L.circleMarker([C.lat[k], C.lon[k]], {
          renderer: canvas,
          radius: radius,
          color: "#ffffff",
          weight: 1.5,
          fillColor: CELL_COLORS[level],
          fillOpacity: 0.8,
          truceCount: c,
          truceCell: k,
          truceAnswer: D,
          className: "truce-cell-" + level,
        });
        cellLayer.addLayer(circle);
        order.push(k);
      }
      order.sort(function (a, b) {
        return C.count[b] - C.count[a];
      });
      order.slice(0, MAX_CELL_LABELS).forEach(function (k) {
        var c = C.count[k];
        cellLayer.addLayer(
          L.marker([C.lat[k], C.lon[k]], {
            icon: L.divIcon({
              html: String(c >= 10000 ? Math.round(c / 1000) + "k" : c),
              className: "truce-cell-label",
              iconSize: [40, 14],
            }),
            interactive: false,
            keyboard: false,
          })
        );
      });
      if (!map.hasLayer(cellLayer)) cellLayer.addTo(map);
    }

    function drawThinTracks(D) {
      if (!layers.tracks) return 0;
      var T = D.tracks;
      // The same answer (a view asked again, kept by the source): the lines drawn stay.
      if (D === thinTracksAnswer) return thinTracks.length;
      thinTracks.forEach(function (line) {
        layers.tracks.removeLayer(line);
      });
      thinTracks = [];
      thinTracksAnswer = D;
      for (var k = 0; k + 1 < T.offsets.length; k++) {
        var latlngs = [];
        for (var v = T.offsets[k]; v < T.offsets[k + 1]; v++) latlngs.push([T.lat[v], T.lon[v]]);
        var party = D.parties[T.party[k]];
        var line = L.polyline(latlngs, {
          color: party ? safeColor(party.color) : "#555555",
          // Thin and light when zoomed out: many tracks under the counts, not a tangle.
          weight: 1.5,
          opacity: 0.45,
          renderer: trackCanvas,
          interactive: false,
        });
        thinTracks.push(line);
        layers.tracks.addLayer(line);
      }
      return thinTracks.length;
    }

    function setCounts(D, extra) {
      var c = D.counts;
      state.counts = Object.assign(
        {
          reports: c.reports,
          violations: c.violationsInside + c.violationsPossible,
          violationsInside: c.violationsInside,
          violationsPossible: c.violationsPossible,
          warnings: c.warnings,
          possible: c.possible,
          zones: state.zones,
          shown: D.view.reports,
        },
        extra
      );
    }

    // From report markers to counts: the markers go (once, not at every view of counts).
    function leaveReports() {
      if (!reportsShown) return;
      useData(emptyData());
      buildLayers();
      thinTracks = [];
      thinTracksAnswer = null;
      reportsShown = false;
    }

    function remember(answer, params) {
      var b = params.bbox.split(",").map(Number);
      lastView = { matched: answer.matched, area: Math.max(1e-12, (b[2] - b[0]) * (b[3] - b[1])) };
    }

    // Whether the view of `params` will likely hold more than LIMIT reports (then it is
    // counted per cell, and its tracks are asked for with the counts, not after them).
    function likelyCounted(params) {
      if (!lastView) return false;
      var b = params.bbox.split(",").map(Number);
      return (lastView.matched * (b[2] - b[0]) * (b[3] - b[1])) / lastView.area > 2 * LIMIT;
    }

    // Cells (fetched here, or the answer already at hand) and the tracks thinned to the zoom,
    // each drawn as it comes: the counts do not wait for the tracks. What was drawn before
    // stays on screen until its replacement is there.
    function showCells(params, zoom, signal, seq, cellsAnswer, tracksAnswer) {
      var q = Object.assign({ zoom: zoom }, params);
      var cellsDrawn = Promise.resolve(cellsAnswer || source.get("cells", q, signal)).then(function (cells) {
        if (seq !== fetchSeq) return;
        remember(cells, params);
        leaveReports();
        drawCells(cells);
        setCounts(cells, {
          mode: "cells",
          cells: cells.cells.count.length,
          tracks: layers.tracks ? thinTracks.length : 0,
          events: 0,
          plain: 0,
        });
        render();
      });
      var tracksDrawn = (tracksAnswer || source.get("tracks", q, signal)).then(function (T) {
        if (seq !== fetchSeq) return;
        leaveReports();
        var shown = drawThinTracks(T);
        if (state.counts.mode === "cells") state.counts.tracks = shown;
      });
      return Promise.all([cellsDrawn, tracksDrawn]);
    }

    function emptyData() {
      return {
        reports: { id: [], t: [], lon: [], lat: [], party: [], kind: [], source: [], conf: [], u: [], unit: [], notes: null, status: [], possible: [], certain: [] },
        findings: { offsets: [0], zone: [], verdict: [], depth: [], u: [], violation: [] },
        tracks: [],
        events: { t: [], report: [], kind: [], zone: [], track: [] },
      };
    }

    function showReports(D, t) {
      cellLayer.clearLayers();
      cellsAnswer = null;
      useData(D);
      buildLayers();
      thinTracks = [];
      thinTracksAnswer = null;
      reportsShown = true;
      Object.keys(sets).forEach(function (name) {
        sets[name].update(null, t);
      });
      var shownTracks = updateTracks(null, t);
      if (eventSet) eventSet.update(null, t);
      setCounts(D, {
        mode: "reports",
        cells: 0,
        plain: sets.reports ? sets.reports.count() : 0,
        tracks: shownTracks,
        events: eventSet ? eventSet.count() : 0,
      });
    }

    function fetchView() {
      if (!source) return Promise.resolve();
      var seq = ++fetchSeq;
      if (inflight) inflight.abort();
      inflight = typeof AbortController === "function" ? new AbortController() : null;
      var signal = inflight ? inflight.signal : undefined;
      var params = viewParams();
      var zoom = map.getZoom();
      var t = state.time;
      loading += 1;
      var work;
      if (zoom < CELL_ZOOM) {
        work = showCells(params, zoom, signal, seq);
      } else {
        // Counting the view per cell is cheap: it says whether its reports fit in one answer.
        // When the last view says this one will be counted anyway, its tracks are asked for
        // at the same time (a zoom waits for one answer, not two in a row).
        var q = Object.assign({ zoom: zoom }, params);
        var tracksAnswer = likelyCounted(params) ? source.get("tracks", q, signal) : null;
        if (tracksAnswer) tracksAnswer.catch(function () {}); // unused if reports are drawn
        work = source.get("cells", q, signal).then(function (cells) {
          if (seq !== fetchSeq) return;
          remember(cells, params);
          if (cells.matched > LIMIT) return showCells(params, zoom, signal, seq, cells, tracksAnswer);
          return source.get("reports", Object.assign({ limit: LIMIT }, params), signal).then(function (D) {
            if (seq !== fetchSeq) return;
            if (D.truncated) return showCells(params, zoom, signal, seq, cells, tracksAnswer);
            showReports(D, t);
          });
        });
      }
      return work
        .then(function () {
          if (seq === fetchSeq) {
            lastError = null;
            render();
            notice();
          }
        })
        .catch(function (err) {
          if (!err || err.name !== "AbortError") {
            lastError = String(err && err.message ? err.message : err);
            if (global.console) global.console.warn("Truce map: " + lastError);
          }
        })
        .then(function () {
          loading -= 1;
        });
    }

    if (source) {
      // Opening a popup pans the map to fit it: fetching then would redraw the markers and
      // close the popup. A move while one is open is fetched when it closes.
      var popupOpen = false;
      var movedUnderPopup = false;
      var shownZoom = map.getZoom();
      var onMove = function () {
        if (popupOpen) {
          movedUnderPopup = true;
          return;
        }
        if (moveTimer !== null) clearTimeout(moveTimer);
        moveTimer = null;
        // A zoom is one step (Leaflet already gathers a wheel's turns into one): asked for at
        // once. Pans come in runs (arrow keys held, flings), so they wait a moment.
        if (map.getZoom() !== shownZoom) {
          shownZoom = map.getZoom();
          fetchView();
          return;
        }
        moveTimer = setTimeout(function () {
          moveTimer = null;
          fetchView();
        }, 60);
      };
      map.on("moveend", onMove);
      map.on("popupopen", function () {
        popupOpen = true;
      });
      map.on("popupclose", function () {
        popupOpen = false;
        if (movedUnderPopup) {
          movedUnderPopup = false;
          onMove();
        }
      });
    }

    // A filter that matches nothing says so, and what there is to choose from.
    var noticeBox = null;
    function notice() {
      var total = P.counts ? P.counts.reports : null;
      var empty = source && state.counts.reports === 0 && total === 0;
      if (!empty) {
        if (noticeBox) noticeBox.style.display = "none";
        return;
      }
      if (!noticeBox) {
        noticeBox = L.DomUtil.create("div", "truce-notice", map.getContainer());
        L.DomEvent.disableClickPropagation(noticeBox);
      }
      var a = (options.source && options.source.available) || {};
      var q = options.query || {};
      var what = [q.party ? "party " + q.party : null, q.zone ? "zone " + q.zone : null,
        q.since || q.until ? "dates " + (q.since || "…") + " to " + (q.until || "…") : null]
        .filter(Boolean).join(", ");
      noticeBox.innerHTML =
        "<h4>No reports match" + (what ? " " + esc(what) : "") + "</h4>" +
        (a.parties && a.parties.length ? "<p>Parties: " + a.parties.map(esc).join(", ") + "</p>" : "") +
        (a.zones && a.zones.length ? "<p>Zones: " + a.zones.map(esc).join(", ") + "</p>" : "") +
        (a.first ? "<p>Reports from " + esc(fmtTime(a.first)) + " to " + esc(fmtTime(a.last)) + "</p>" : "<p>No reports are stored.</p>");
      noticeBox.style.display = "";
    }

    var ui = {};

    function render() {
      if (!ui.time) return;
      ui.time.textContent = fmtTime(state.time);
      if (ui.date && document.activeElement !== ui.date) {
        ui.date.value = new Date(state.time * 1000).toISOString().slice(0, 10);
      }
      var c = state.counts;
      if (source) {
        ui.counts.textContent =
          (c.reports === undefined ? "…" : fmtNumber(c.reports)) + " reports" +
          (c.shown !== undefined && c.shown !== c.reports ? " (" + fmtNumber(c.shown) + " in view)" : "") +
          " · violations: " + (c.violationsInside || 0) + " inside, " + (c.violationsPossible || 0) +
          " possible · " + (c.warnings || 0) + " warnings · " + (state.zones || 0) + " zones in force";
        ui.range.value = String(state.step);
        ui.range.setAttribute("aria-valuetext", fmtTime(state.time));
        return;
      }
      ui.counts.textContent =
        c.reports + " of " + n + " reports · violations: " + c.violationsInside + " inside, " +
        c.violationsPossible + " possible · " + c.warnings + " warnings · " + c.zones +
        " zones in force";
      ui.range.value = String(state.step);
      ui.range.setAttribute("aria-valuetext", fmtTime(state.time));
    }

    var pending = null;
    var delay = source ? 60 : n > 20000 ? 150 : 0;

    function schedule() {
      if (ui.time) ui.time.textContent = fmtTime(steps[state.step]);
      if (pending !== null) clearTimeout(pending);
      if (delay === 0) {
        apply();
      } else {
        pending = setTimeout(function () {
          pending = null;
          apply();
        }, delay);
      }
    }

    var playing = null;

    function stop() {
      if (playing !== null) {
        clearInterval(playing);
        playing = null;
      }
      if (ui.play) {
        ui.play.textContent = "▶";
        ui.play.title = "Play";
      }
    }

    function play() {
      if (playing !== null) {
        stop();
        return;
      }
      if (state.step >= steps.length - 1) {
        state.step = 0;
        apply();
      }
      var stride = Math.max(1, Math.round(steps.length / 150));
      ui.play.textContent = "❚❚";
      ui.play.title = "Pause";
      playing = setInterval(function () {
        if (state.step >= steps.length - 1) {
          stop();
          return;
        }
        state.step = Math.min(steps.length - 1, state.step + stride);
        apply();
      }, 600);
    }

    var Slider = L.Control.extend({
      options: { position: "bottomleft" },
      onAdd: function () {
        var div = L.DomUtil.create("div", "truce-slider leaflet-bar");
        var title = L.DomUtil.create("div", "truce-slider-title", div);
        title.textContent = options.title || "Truce";
        var row = L.DomUtil.create("div", "truce-slider-row", div);
        ui.play = L.DomUtil.create("button", "truce-play", row);
        ui.play.type = "button";
        ui.play.textContent = "▶";
        ui.play.title = "Play";
        ui.play.setAttribute("aria-label", "Play or pause the time slider");
        ui.range = L.DomUtil.create("input", "truce-range", row);
        ui.range.type = "range";
        ui.range.min = "0";
        ui.range.max = String(Math.max(0, steps.length - 1));
        ui.range.step = "1";
        ui.range.setAttribute("aria-label", "Time");
        ui.window = L.DomUtil.create("select", "truce-window", row);
        ui.window.setAttribute("aria-label", "Time window");
        P.windows.forEach(function (w) {
          var option = L.DomUtil.create("option", "", ui.window);
          option.value = String(w[0]);
          option.textContent = w[1];
        });
        // A date picker beside the slider: a season has thousands of stops, a day is one pick.
        ui.date = L.DomUtil.create("input", "truce-date", row);
        ui.date.type = "date";
        ui.date.setAttribute("aria-label", "Go to the end of a day (UTC)");
        ui.date.title = "Go to the end of a day (UTC)";
        if (steps.length) {
          ui.date.min = new Date(steps[0] * 1000).toISOString().slice(0, 10);
          ui.date.max = new Date(steps[steps.length - 1] * 1000).toISOString().slice(0, 10);
        }
        L.DomEvent.on(ui.date, "change", function () {
          if (!ui.date.value) return;
          var end = Date.parse(ui.date.value + "T23:59:59Z") / 1000;
          stop();
          state.step = Math.max(0, Math.min(steps.length - 1, upperBound(steps, end) - 1));
          apply();
        });
        var label = L.DomUtil.create("div", "truce-slider-label", div);
        ui.time = L.DomUtil.create("output", "truce-time", label);
        ui.counts = L.DomUtil.create("span", "truce-counts", label);
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        L.DomEvent.on(ui.range, "input", function () {
          state.step = Number(ui.range.value);
          schedule();
        });
        L.DomEvent.on(ui.range, "change", function () {
          state.step = Number(ui.range.value);
          if (pending !== null) {
            clearTimeout(pending);
            pending = null;
          }
          apply();
        });
        L.DomEvent.on(ui.window, "change", function () {
          state.window = Number(ui.window.value);
          apply();
        });
        L.DomEvent.on(ui.play, "click", play);
        return div;
      },
    });
    new Slider().addTo(map);

    // --- live incidents: GET /events as Server-Sent Events (the served map only) -------------

    var LIVE_TYPES = ["incident.opened", "incident.updated", "incident.closed"];
    var LIVE_TITLES = {
      "incident.opened": "New incident",
      "incident.updated": "Incident updated",
      "incident.closed": "Incident closed",
    };
    // Older notices go when a new one would make more than this.
    var MAX_LIVE_NOTICES = 5;
    var liveBox = null;
    var liveTimer = null;

    function partyName(code) {
      for (var k = 0; k < parties.length; k++) {
        if (parties[k].code === code) {
          return parties[k].name && parties[k].name !== code ? code + " (" + parties[k].name + ")" : code;
        }
      }
      return String(code);
    }

    function liveNotice(type, d) {
      if (!liveBox) {
        var Box = L.Control.extend({
          options: { position: "topright" },
          onAdd: function () {
            var div = L.DomUtil.create("div", "truce-live");
            // Read out politely by screen readers as notices arrive.
            div.setAttribute("role", "log");
            div.setAttribute("aria-live", "polite");
            div.setAttribute("aria-label", "New incidents");
            L.DomEvent.disableClickPropagation(div);
            L.DomEvent.disableScrollPropagation(div);
            return div;
          },
        });
        liveBox = new Box().addTo(map).getContainer();
      }
      var item = L.DomUtil.create("div", "truce-live-item truce-live-" + (d.verdict === "inside" ? "inside" : "possible"), liveBox);
      var close = L.DomUtil.create("button", "truce-live-close", item);
      close.type = "button";
      close.textContent = "×";
      close.setAttribute("aria-label", "Dismiss");
      L.DomEvent.on(close, "click", function () {
        if (item.parentNode) item.parentNode.removeChild(item);
      });
      var title = L.DomUtil.create("strong", "truce-live-title", item);
      title.textContent = LIVE_TITLES[type] || type;
      var what = L.DomUtil.create("div", "truce-live-what", item);
      what.textContent = partyName(d.party) + (d.unit ? " unit " + d.unit : "") + " · " + (d.zone_name || d.zone_id);
      var how = L.DomUtil.create("div", "truce-live-how", item);
      var observed = Date.parse(d.observed_at);
      how.textContent =
        (d.verdict === "inside" ? "inside" : "possible") +
        (typeof d.depth_m === "number" ? ", " + depthText(d.depth_m, 0) : "") +
        (isNaN(observed) ? "" : " · " + fmtTime(observed / 1000));
      while (liveBox.children.length > MAX_LIVE_NOTICES) liveBox.removeChild(liveBox.firstChild);
      return observed / 1000;
    }

    // A burst of events (a batch of reports) gives one refetch. A map at the slider's end
    // follows the new reports: the slider gets a stop at the latest one.
    function liveRefresh(t) {
      if (!isNaN(t) && steps.length && state.step === steps.length - 1 && t > steps[steps.length - 1]) {
        steps.push(t);
        state.step = steps.length - 1;
        if (ui.range) ui.range.max = String(state.step);
        if (ui.date) ui.date.max = new Date(t * 1000).toISOString().slice(0, 10);
      }
      if (liveTimer !== null) clearTimeout(liveTimer);
      liveTimer = setTimeout(function () {
        liveTimer = null;
        // Kept answers are older than the news: ask again.
        if (source && source.forget) source.forget();
        apply();
      }, 250);
    }

    function listen(live) {
      if (!source || !live || !live.url || typeof global.EventSource !== "function") return null;
      var url = live.url + "?types=" + encodeURIComponent(LIVE_TYPES.join(","));
      if (live.after !== null && live.after !== undefined) url += "&after=" + encodeURIComponent(live.after);
      // A map of one party or one zone hears only of its incidents.
      var src = options.source;
      if (src.party) url += "&parties=" + encodeURIComponent(src.party);
      if (src.zone) url += "&zones=" + encodeURIComponent(src.zone);
      var stream = new global.EventSource(url);
      var onEvent = function (message) {
        var envelope;
        try {
          envelope = JSON.parse(message.data);
        } catch (err) {
          return;
        }
        if (!envelope || !envelope.data) return;
        liveRefresh(liveNotice(envelope.type || message.type, envelope.data));
      };
      LIVE_TYPES.forEach(function (type) {
        stream.addEventListener(type, onEvent);
      });
      // Quiet: the browser reconnects by itself, resuming with Last-Event-ID.
      stream.onerror = function () {};
      global.addEventListener("pagehide", function () {
        stream.close();
      });
      return stream;
    }

    state.step = Math.max(0, Math.min(steps.length - 1, upperBound(steps, P.opening) - 1));
    apply();
    var liveStream = listen(options.source && options.source.events);

    return {
      map: map,
      layers: layers,
      steps: steps,
      reportCount: n,
      loading: function () {
        return loading > 0 || moveTimer !== null || pending !== null || liveTimer !== null;
      },
      mode: function () {
        return state.counts.mode || "inline";
      },
      lastError: function () {
        return lastError;
      },
      cellLayer: cellLayer,
      live: function () {
        return liveStream ? liveStream.readyState : null;
      },
      step: function () {
        return state.step;
      },
      time: function () {
        return state.time;
      },
      counts: function () {
        return Object.assign({}, state.counts);
      },
      setStep: function (k) {
        stop();
        state.step = Math.max(0, Math.min(steps.length - 1, k));
        apply();
        return state.time;
      },
      setWindow: function (seconds) {
        state.window = seconds;
        if (ui.window) ui.window.value = String(seconds);
        apply();
      },
    };
  }

  global.TruceMap = { init: init, upperBound: upperBound, esc: esc };
})(window);
