// Live counters: the page is whole without this; it only keeps the numbers moving.
// Elements marked data-alert/data-field take their value from each summary event.
(function () {
  "use strict";
  var holder = document.querySelector("[data-live]");
  if (!holder || !window.EventSource) return;
  var ids = holder.getAttribute("data-live").split(" ").filter(Boolean);
  if (!ids.length) return;
  var status = holder.querySelector(".live-state");
  var source = new EventSource("/ops/live?" + ids.map(function (id) { return "alert=" + encodeURIComponent(id); }).join("&"));
  function pick(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }
  source.addEventListener("summary", function (event) {
    var s = JSON.parse(event.data);
    var fields = document.querySelectorAll('[data-alert="' + s.id + '"]');
    for (var i = 0; i < fields.length; i++) {
      var el = fields[i], field = el.getAttribute("data-field");
      if (field === "progress") {
        el.max = s.targeted || 1;
        el.value = s.terminal;
        el.textContent = s.terminal + " of " + s.targeted;
      } else {
        var value = pick(s, field);
        el.textContent = value === undefined ? 0 : value;
      }
    }
    if (status && status.textContent) status.textContent = "";
  });
  source.onerror = function () { if (status) status.textContent = "Live updates paused; reconnecting."; };
})();
