// Item explorer of a jmedllm report: filter one run's items, show one item's prompt and answer.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("explorer-data").textContent);
  var S = data.strings, items = data.items, LIMIT = 500;
  var $ = function (id) { return document.getElementById(id); };
  function str(i) { return i >= 0 ? S[i] : ""; }
  function byItem(run) {
    var m = {};
    (data.results[run] || []).forEach(function (r) { m[r[0]] = r; });
    return m;
  }
  function cell(tr, text) { var td = document.createElement("td"); td.textContent = text; tr.appendChild(td); }
  function show(it, r) {
    var d = $("detail"); d.textContent = "";
    var h = document.createElement("h3"); h.textContent = it.k; d.appendChild(h);
    var facts = [["gold", r[7] || it.gold], ["answer", r[1] || "(none)"], ["verdict", r[3]], ["how found", r[2]],
                 ["matched text", str(r[6])], ["forbidden choices", it.f || "–"]];
    var dl = document.createElement("p");
    dl.textContent = facts.map(function (f) { return f[0] + ": " + f[1]; }).join(" · ");
    d.appendChild(dl);
    if (it.ch.length) {
      var ol = document.createElement("ol"); ol.type = "a";
      it.ch.forEach(function (c) { var li = document.createElement("li"); li.textContent = str(c); ol.appendChild(li); });
      d.appendChild(ol);
    }
    [["prompt", r[4]], ["raw output (or choice log-probabilities)", r[5]]].forEach(function (p) {
      var t = document.createElement("h4"); t.textContent = p[0]; d.appendChild(t);
      var pre = document.createElement("pre"); pre.textContent = str(p[1]); d.appendChild(pre);
    });
  }
  function render() {
    var run = +$("f-run").value, other = $("f-other").value;
    var want = {v: $("f-verdict").value, g: $("f-group").value, c: $("f-category").value, y: $("f-year").value};
    var others = other === "" ? null : byItem(+other);
    var rows = (data.results[run] || []).filter(function (r) {
      var it = items[r[0]];
      if (want.v && r[3] !== want.v) return false;
      if (want.g && it.g !== want.g) return false;
      if (want.c && it.c !== want.c) return false;
      if (want.y && it.y !== want.y) return false;
      if (others) {
        var o = others[r[0]];
        if (!o || (o[3] === "correct") === (r[3] === "correct")) return false;
      }
      return true;
    });
    var body = document.querySelector("#items tbody"); body.textContent = "";
    rows.slice(0, LIMIT).forEach(function (r) {
      var it = items[r[0]], tr = document.createElement("tr");
      tr.className = r[3];
      [it.k, it.g, it.y, it.c, r[1], r[3], r[7] || it.gold, it.f, r[2]].forEach(function (t) { cell(tr, t); });
      tr.addEventListener("click", function () { show(it, r); });
      body.appendChild(tr);
    });
    $("count").textContent = rows.length + " item(s)" + (rows.length > LIMIT ? ", first " + LIMIT + " shown" : "");
  }
  ["f-run", "f-verdict", "f-group", "f-category", "f-year", "f-other"].forEach(function (id) {
    $(id).addEventListener("change", render);
  });
  render();
})();
