// Live counters: the page is whole without this; it only keeps the numbers moving.
// Elements marked data-alert/data-field take their value from each summary event,
// the delivery engine's line (data-engine) from each engine event.
(function () {
  "use strict";
  var holder = document.querySelector("[data-live]");
  var engine = document.querySelector("[data-engine-line]");
  if ((!holder && !engine) || !window.EventSource) return;
  var ids = holder ? holder.getAttribute("data-live").split(" ").filter(Boolean) : [];
  var status = holder ? holder.querySelector(".live-state") : null;
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
  // Same words as the server renders (templates/web/ops/macros.html, engine_line).
  source.addEventListener("engine", function (event) {
    if (!engine) return;
    var e = JSON.parse(event.data);
    var queues = e.queues && Object.keys(e.queues).length;
    var set = function (name, words) { engine.querySelector('[data-engine="' + name + '"]').textContent = words; };
    set("redis", e.redis_up ? "Redis answering" : "Redis NOT answering: deliveries wait, nothing confirmed is lost");
    set("queues", queues ? (e.queues.steps || 0) + " escalations, " + (e.queues.fanout || 0) + " fan-out batches"
                         : "broker NOT answering");
    set("lag", e.timer_lag_s < 1 ? "on time" : Math.round(e.timer_lag_s) + " s late");
    var printHouse = e.print_house_down_s !== null && e.print_house_down_s !== undefined;
    set("printhouse", printHouse ? "· print house's drop box NOT answering for " + Math.round(e.print_house_down_s) + " s: letters wait" : "");
    engine.classList.toggle("engine-trouble", !e.redis_up || !queues || e.timer_lag_s >= 5 || printHouse);
  });
  source.onerror = function () { if (status) status.textContent = "Live updates paused; reconnecting."; };
})();
