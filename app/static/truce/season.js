/*
 * Truce map, offline: a season embedded in a standalone file (app/mapview/embed.py writes it as
 * base64 typed arrays), answering what map.js asks /map/data/{reports,cells,tracks} for on a
 * server, with the same shapes: the reports of a view and window (capped), counts per grid
 * cell, and tracks thinned to the zoom. Reports are in time order, so a window is two binary
 * searches; a view is one pass over the window.
 *
 * TruceSeason.source(embedded) returns {get(kind, params)}, each answer a Promise.
 */
(function (global) {
  "use strict";

  var TYPES = {
    Float32Array: Float32Array,
    Float64Array: Float64Array,
    Int32Array: Int32Array,
    Int16Array: Int16Array,
    Int8Array: Int8Array,
  };
  var VIOLATION = 3;
  var WARNING = 2;
  var CELL_PX = 48;
  var TRACK_TOLERANCE_PX = 1.5;
  var MAX_TRACK_VERTICES = 20000;

  function decode(column) {
    var Type = TYPES[column.type];
    var text = global.atob(column.b64);
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return new Type(bytes.buffer);
  }

  function decodeAll(columns) {
    var out = {};
    Object.keys(columns).forEach(function (key) {
      out[key] = decode(columns[key]);
    });
    return out;
  }

  // First index whose value is >= x, in an ascending array.
  function lowerBound(values, x) {
    var lo = 0;
    var hi = values.length;
    while (lo < hi) {
      var mid = (lo + hi) >>> 1;
      if (values[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  function seconds(text) {
    return Math.floor(Date.parse(text) / 1000);
  }

  function degreesPerPixel(zoom) {
    return 360 / (256 * Math.pow(2, zoom));
  }

  function source(E) {
    var R = decodeAll(E.reports);
    var F = decodeAll(E.findings);
    var n = E.n;
    var t0 = E.t0;
    // Ids as a prefix and a number each (app/mapview/embed.py), or as text.
    var idNumbers = E.ids.number ? decode(E.ids.number) : null;
    function idOf(i) {
      return idNumbers ? E.ids.prefix + idNumbers[i] : E.ids.text[i];
    }

    function span(params) {
      var lo = params.since ? lowerBound(R.t, seconds(params.since) - t0) : 0;
      var hi = params.until ? lowerBound(R.t, seconds(params.until) - t0) : n;
      return [lo, Math.max(lo, hi)];
    }

    function inView(params) {
      if (!params.bbox) {
        return function () {
          return true;
        };
      }
      var b = params.bbox.split(",").map(Number);
      return function (i) {
        return R.lon[i] >= b[0] && R.lon[i] <= b[2] && R.lat[i] >= b[1] && R.lat[i] <= b[3];
      };
    }

    function counts(rows) {
      var c = { reports: 0, violationsInside: 0, violationsPossible: 0, warnings: 0, possible: 0 };
      rows(function (i) {
        c.reports += 1;
        if (R.status[i] === VIOLATION) {
          if (R.certain[i] === 1) c.violationsInside += 1;
          else c.violationsPossible += 1;
        }
        if (R.status[i] === WARNING) c.warnings += 1;
        if (R.possible[i] === 1) c.possible += 1;
      });
      return c;
    }

    function viewRows(params) {
      var s = span(params);
      var keep = inView(params);
      var rows = [];
      for (var i = s[0]; i < s[1]; i++) if (keep(i)) rows.push(i);
      var window = counts(function (visit) {
        for (var k = s[0]; k < s[1]; k++) visit(k);
      });
      var view = counts(function (visit) {
        rows.forEach(visit);
      });
      return { span: s, rows: rows, counts: window, view: view };
    }

    function pick(column, rows, scale, offset) {
      return rows.map(function (i) {
        return offset ? column[i] + offset : column[i];
      });
    }

    function reports(params) {
      var cut = viewRows(params);
      var limit = params.limit || 3000;
      var shown = cut.rows.slice(0, limit);
      var position = new Map();
      shown.forEach(function (i, p) {
        position.set(i, p);
      });
      var findings = { offsets: [0], zone: [], verdict: [], depth: [], u: [], violation: [] };
      shown.forEach(function (i) {
        for (var j = F.offsets[i]; j < F.offsets[i + 1]; j++) {
          findings.zone.push(F.zone[j]);
          findings.verdict.push(F.verdict[j]);
          findings.depth.push(F.depth[j]);
          findings.u.push(Math.round(F.u[j] * 10) / 10);
          findings.violation.push(F.violation[j]);
        }
        findings.offsets.push(findings.zone.length);
      });
      var tracks = [];
      var local = new Map();
      shown.forEach(function (i, p) {
        var code = R.track[i];
        if (code < 0) return;
        if (!local.has(code)) {
          local.set(code, tracks.length);
          var whole = E.tracks[code];
          tracks.push({ party: whole.party, unit: whole.unit, rows: [], summary: whole.summary });
        }
        tracks[local.get(code)].rows.push(p);
      });
      var events = { t: [], report: [], kind: [], zone: [], track: [] };
      for (var e = 0; e < E.events.t.length; e++) {
        var p = position.get(E.events.report[e]);
        if (p === undefined) continue;
        events.t.push(E.events.t[e]);
        events.report.push(p);
        events.kind.push(E.events.kind[e]);
        events.zone.push(E.events.zone[e]);
        events.track.push(local.has(E.events.track[e]) ? local.get(E.events.track[e]) : -1);
      }
      return {
        parties: E.parties,
        sources: E.sources,
        dashes: E.dashes,
        units: E.units,
        zones: E.zones,
        reports: {
          id: shown.map(idOf),
          t: pick(R.t, shown, null, t0),
          lon: pick(R.lon, shown),
          lat: pick(R.lat, shown),
          party: pick(R.party, shown),
          kind: pick(R.kind, shown),
          source: pick(R.source, shown),
          conf: pick(R.conf, shown),
          u: pick(R.u, shown),
          unit: shown.map(function (i) {
            return R.track[i] >= 0 ? E.tracks[R.track[i]].unit : -1;
          }),
          notes: null,
          status: pick(R.status, shown),
          possible: pick(R.possible, shown),
          certain: pick(R.certain, shown),
        },
        findings: findings,
        tracks: tracks,
        events: events,
        counts: cut.counts,
        view: cut.view,
        matched: cut.rows.length,
        truncated: cut.rows.length > limit,
      };
    }

    function cells(params) {
      var cut = viewRows(params);
      var size = CELL_PX * degreesPerPixel(Number(params.zoom));
      var np = E.parties.length;
      var index = new Map();
      var C = { lon: [], lat: [], count: [], inside: [], possible: [], warnings: [], byParty: [] };
      cut.rows.forEach(function (i) {
        var key = Math.floor(R.lon[i] / size) + "," + Math.floor(R.lat[i] / size);
        var k = index.get(key);
        if (k === undefined) {
          k = C.count.length;
          index.set(key, k);
          C.lon.push(0);
          C.lat.push(0);
          C.count.push(0);
          C.inside.push(0);
          C.possible.push(0);
          C.warnings.push(0);
          for (var j = 0; j < np; j++) C.byParty.push(0);
        }
        C.count[k] += 1;
        C.lon[k] += R.lon[i];
        C.lat[k] += R.lat[i];
        if (R.status[i] === VIOLATION) {
          if (R.certain[i] === 1) C.inside[k] += 1;
          else C.possible[k] += 1;
        }
        if (R.status[i] === WARNING) C.warnings[k] += 1;
        if (R.party[i] >= 0 && R.party[i] < np) C.byParty[k * np + R.party[i]] += 1;
      });
      for (var k = 0; k < C.count.length; k++) {
        C.lon[k] /= C.count[k];
        C.lat[k] /= C.count[k];
      }
      return { parties: E.parties, size: size, cells: C, counts: cut.counts, view: cut.view, matched: cut.rows.length };
    }

    // Each track with a report in view, over the window, with the vertices closer than the
    // tolerance to the last one kept dropped (radial thinning: one pass, no recursion).
    function tracks(params) {
      var s = span(params);
      var keep = inView(params);
      var seen = new Set();
      var i;
      for (i = s[0]; i < s[1]; i++) if (R.track[i] >= 0 && keep(i)) seen.add(R.track[i]);
      var tolerance = TRACK_TOLERANCE_PX * degreesPerPixel(Number(params.zoom));
      var byTrack = new Map();
      for (i = s[0]; i < s[1]; i++) {
        var code = R.track[i];
        if (!seen.has(code)) continue;
        if (!byTrack.has(code)) byTrack.set(code, []);
        byTrack.get(code).push(i);
      }
      var T = thin(byTrack, tolerance);
      // As on a server: past MAX_TRACK_VERTICES, a coarser tolerance (doubled, up to 8 times).
      for (var round = 0; round < 8 && T.lon.length > MAX_TRACK_VERTICES; round++) {
        tolerance *= 2;
        T = thin(byTrack, tolerance);
      }
      if (T.lon.length > MAX_TRACK_VERTICES) {
        // Tracks that jump at every step: every k-th vertex of each, and its last.
        var stride = Math.ceil(T.lon.length / MAX_TRACK_VERTICES);
        var S = { party: T.party, unit: T.unit, offsets: [0], lon: [], lat: [] };
        for (var k = 0; k + 1 < T.offsets.length; k++) {
          for (var v = T.offsets[k]; v < T.offsets[k + 1]; v++) {
            if ((v - T.offsets[k]) % stride === 0 || v === T.offsets[k + 1] - 1) {
              S.lon.push(T.lon[v]);
              S.lat.push(T.lat[v]);
            }
          }
          S.offsets.push(S.lon.length);
        }
        T = S;
      }
      return { parties: E.parties, tracks: T };
    }

    function thin(byTrack, tolerance) {
      var T = { party: [], unit: [], offsets: [0], lon: [], lat: [] };
      byTrack.forEach(function (rows, code) {
        var lastLon = null;
        var lastLat = null;
        rows.forEach(function (r, k) {
          var far = lastLon === null || Math.abs(R.lon[r] - lastLon) > tolerance || Math.abs(R.lat[r] - lastLat) > tolerance;
          if (far || k === rows.length - 1) {
            T.lon.push(R.lon[r]);
            T.lat.push(R.lat[r]);
            lastLon = R.lon[r];
            lastLat = R.lat[r];
          }
        });
        T.offsets.push(T.lon.length);
        T.party.push(E.tracks[code].party);
        T.unit.push(E.units[E.tracks[code].unit]);
      });
      return T;
    }

    var answers = { reports: reports, cells: cells, tracks: tracks };
    return {
      get: function (kind, params) {
        try {
          return Promise.resolve(answers[kind](params));
        } catch (err) {
          return Promise.reject(err);
        }
      },
    };
  }

  global.TruceSeason = { source: source };
})(window);
