// SPDX-License-Identifier: Apache-2.0
// The dashboard: reads api/overview (relative, so it works under a path
// prefix) and renders it with textContent only (addresses and error texts
// come from outside). The admin token, if any, travels in an HttpOnly cookie
// the server set; this script never sees it.
"use strict";
(function () {
  var EVERY = 5000, LIMIT = 500;
  var $ = function (id) { return document.getElementById(id); };
  var offset = 0, timer = null, seq = 0, debounce = null, lastMatched = 0;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function td(text, cls) { return el("td", cls, text); }

  function ago(sec) {
    if (sec === undefined || sec === null) return "";
    if (sec < 60) return sec + " s ago";
    if (sec < 3600) return Math.floor(sec / 60) + " min ago";
    if (sec < 86400) return Math.floor(sec / 3600) + " h " + Math.floor(sec % 3600 / 60) + " min ago";
    return Math.floor(sec / 86400) + " d ago";
  }
  function until(iso, now) {
    if (!iso) return "";
    var s = Math.round((Date.parse(iso) - Date.parse(now)) / 1000);
    if (s <= 0) return "due now";
    if (s < 60) return "in " + s + " s";
    if (s < 3600) return "in " + Math.floor(s / 60) + " min " + (s % 60) + " s";
    return "in " + Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min";
  }
  function since(iso, now) {
    if (!iso) return null;
    return Math.max(0, Math.round((Date.parse(now) - Date.parse(iso)) / 1000));
  }
  function localTime(iso) { return iso ? new Date(iso).toLocaleString() : ""; }

  function showAlert(msg) {
    var a = $("alert");
    if (msg) { a.textContent = msg; a.hidden = false; } else { a.hidden = true; a.textContent = ""; }
  }

  function query() {
    var p = new URLSearchParams();
    var st = $("state").value, q = $("filter").value.trim();
    if (st) p.set("state", st);
    if (q) p.set("q", q);
    p.set("limit", String(LIMIT));
    if (offset) p.set("offset", String(offset));
    return p.toString();
  }

  function load() {
    var mine = ++seq;
    clearTimeout(timer);
    fetch("api/overview?" + query(), { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) { return { r: r, body: body }; });
      })
      .then(function (x) {
        if (mine !== seq) return; // a newer request was sent meanwhile
        if (x.r.status === 401) {
          showAlert("Not authorized: open this page as …/ui/?token=<EL_ADMIN_TOKEN> (" + (x.body.Error || "401") + ")");
          return;
        }
        if (!x.r.ok) { showAlert("The service answered " + x.r.status + ": " + (x.body.Error || x.r.statusText)); return; }
        showAlert("");
        render(x.body);
      })
      .catch(function (e) { if (mine === seq) showAlert("Cannot reach the service: " + e.message); })
      .then(schedule, schedule);
  }

  function schedule() {
    clearTimeout(timer);
    if ($("auto").checked) timer = setTimeout(function () { if (document.hidden) schedule(); else load(); }, EVERY);
  }

  function render(o) {
    $("meta").textContent = (o.Mode === "cluster" ? "cluster" : "single node") + (o.Node ? " · answered by " + o.Node : "") +
      (o.Version ? " · " + o.Version : "");
    $("updated").textContent = "updated " + localTime(o.GeneratedAt);
    var c = o.Counts || {};
    $("counts").textContent = o.Total + " registered: " + (c.exists || 0) + " exists, " + (c.connecting || 0) + " connecting, " +
      (c.error || 0) + " error, " + (c.closed || 0) + " closed";
    renderNodes(o.Nodes || [], o.GeneratedAt);
    renderMailboxes(o);
  }

  function renderNodes(nodes, now) {
    var tb = $("nodes").tBodies[0], rows = [];
    nodes.forEach(function (n) {
      var tr = el("tr");
      tr.dataset.node = n.ID;
      var name = td(n.ID || "(this node)");
      if (n.Self) name.appendChild(el("small", null, "answering this page"));
      if (n.Leaving) name.appendChild(el("small", null, "leaving: handing its mailboxes over"));
      if (n.Addr) name.appendChild(el("small", null, n.Addr));
      tr.appendChild(name);
      var load = td();
      if (n.Capacity > 0) {
        var m = el("meter");
        m.min = 0; m.max = 1; m.low = 0.8; m.high = 0.95; m.optimum = 0; m.value = n.Load;
        load.appendChild(m);
        load.appendChild(document.createTextNode(" " + Math.round(n.Load * 100) + " %"));
      } else load.textContent = "no limit";
      tr.appendChild(load);
      tr.appendChild(td(n.Owned + " / " + (n.Capacity > 0 ? n.Capacity : "∞"), "num"));
      var s = n.States || {};
      tr.appendChild(td(s.exists || 0, "num"));
      tr.appendChild(td(s.connecting || 0, "num"));
      tr.appendChild(td(s.error || 0, "num"));
      tr.appendChild(td(n.Updated ? ago(since(n.Updated, now)) : (n.Self ? "now" : "")));
      rows.push(tr);
    });
    tb.replaceChildren.apply(tb, rows);
  }

  function renderMailboxes(o) {
    var tb = $("mailboxes").tBodies[0], rows = [];
    lastMatched = o.Matched;
    (o.Mailboxes || []).forEach(function (m) {
      var tr = el("tr");
      tr.dataset.id = m.ID;
      tr.dataset.state = m.State;
      var box = td(m.Address || "(no address)", "addr");
      box.appendChild(el("small", null, m.ID));
      tr.appendChild(box);
      var st = td();
      st.appendChild(el("span", "badge s-" + m.State, m.State));
      if (m.Stale) st.appendChild(el("small", null, "no live node; last known: " + m.LastKnownState));
      else if (m.Since) st.appendChild(el("small", null, "since " + ago(since(m.Since, o.GeneratedAt))));
      tr.appendChild(st);
      // A single node stamps no name on its states: it is the answering one.
      tr.appendChild(td(m.Node || (o.Mode !== "cluster" && m.State !== "closed" ? o.Node : "")));
      var tr2 = td((m.Transport || m.Kind) + (m.Push ? " · " + m.Push : ""));
      tr.appendChild(tr2);
      var f = td(m.Folders.length ? m.Folders.length + (m.Folders.length === 1 ? " folder" : " folders") : "");
      if (m.Folders.length) { f.title = m.Folders.join("\n"); f.appendChild(el("small", null, m.Folders.slice(0, 3).join(", ") + (m.Folders.length > 3 ? ", …" : ""))); }
      tr.appendChild(f);
      var ev = td(m.LastEventAt ? ago(m.LastEventAgeSeconds) : (m.State === "closed" ? "" : "none yet"));
      if (m.LastEventAt) ev.title = localTime(m.LastEventAt);
      tr.appendChild(ev);
      tr.appendChild(td(m.Delivered, "num"));
      var er = td("", "err");
      if (m.ErrorClass) {
        er.appendChild(el("b", "eclass", m.ErrorClass));
        er.appendChild(el("small", null, m.LastError || ""));
        er.title = m.LastError || "";
      }
      tr.appendChild(er);
      var rt = td(until(m.RetryAt, o.GeneratedAt));
      if (m.RetryAt) rt.title = localTime(m.RetryAt);
      tr.appendChild(rt);
      var h = td();
      if (m.History) {
        var hs = m.History;
        h.textContent = hs.State + ": " + hs.Delivered + " / " + hs.Found + " delivered" + (hs.Skipped ? ", " + hs.Skipped + " skipped" : "");
        if (hs.Folder) h.appendChild(el("small", null, "in " + hs.Folder));
        if (hs.Error) h.appendChild(el("small", "err", hs.Error));
        h.title = hs.Filter || "";
      }
      tr.appendChild(h);
      rows.push(tr);
    });
    if (!rows.length) {
      var e = el("tr"), c = el("td", "empty", o.Total ? "No mailbox matches the filter." : "No mailbox is registered.");
      c.colSpan = 10;
      e.appendChild(c);
      rows.push(e);
    }
    tb.replaceChildren.apply(tb, rows);
    var shown = (o.Mailboxes || []).length;
    $("matched").textContent = o.Matched === o.Total ? "" : o.Matched + " of " + o.Total + " match";
    if (o.Matched > shown) $("matched").textContent += " · showing " + (o.Offset + 1) + "–" + (o.Offset + shown);
    $("prev").disabled = o.Offset === 0;
    $("next").disabled = o.Offset + shown >= o.Matched;
  }

  function restart() { offset = 0; load(); }

  document.addEventListener("DOMContentLoaded", function () {
    $("every").textContent = String(EVERY / 1000);
    $("state").addEventListener("change", restart);
    $("filter").addEventListener("input", function () { clearTimeout(debounce); debounce = setTimeout(restart, 200); });
    $("auto").addEventListener("change", function () { if ($("auto").checked) load(); else clearTimeout(timer); });
    $("refresh").addEventListener("click", load);
    $("prev").addEventListener("click", function () { offset = Math.max(0, offset - LIMIT); load(); });
    $("next").addEventListener("click", function () { if (offset + LIMIT < lastMatched) { offset += LIMIT; load(); } });
    load();
  });
})();
