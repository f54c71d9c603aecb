// The cron builder of the schedule form: it writes the expression, and reads it back when
// the expression is edited by hand. The server checks every expression; this only helps.
(function () {
  "use strict";

  function pad(n) { return String(n).padStart(2, "0"); }
  function num(el, low, high) {
    var n = parseInt(el.value, 10);
    if (isNaN(n)) { n = low; }
    return Math.min(high, Math.max(low, n));
  }

  function setup(form) {
    var $ = function (sel) { return form.querySelector(sel); };
    var mode = $("#builder-mode");
    var spec = $("#spec");
    if (!mode || !spec) { return; }
    var parts = form.querySelectorAll(".builder-part");
    var days = form.querySelectorAll("input.day");

    function show() {
      parts.forEach(function (part) {
        part.hidden = part.dataset.modes.split(" ").indexOf(mode.value) < 0;
      });
    }

    function time() {
      var value = $("#at-time").value || "09:00";
      var hm = value.split(":");
      return { hour: parseInt(hm[0], 10) || 0, minute: parseInt(hm[1], 10) || 0 };
    }

    function build() {
      var t = time();
      switch (mode.value) {
        case "minutes": return "*/" + num($("#every-minutes"), 1, 59) + " * * * *";
        case "hourly": return num($("#at-minute"), 0, 59) + " * * * *";
        case "daily": return t.minute + " " + t.hour + " * * *";
        case "weekdays": return t.minute + " " + t.hour + " * * 1-5";
        case "weekly":
          var chosen = [];
          days.forEach(function (d) { if (d.checked) { chosen.push(d.value); } });
          chosen.sort();
          return t.minute + " " + t.hour + " * * " + (chosen.join(",") || "1");
        case "monthly": return t.minute + " " + t.hour + " " + num($("#month-day"), 1, 31) + " * *";
        case "monthly-last": return t.minute + " " + t.hour + " L * *";
        case "interval": return "@every " + Math.max(1, parseInt($("#every-amount").value, 10) || 1) + $("#every-unit").value;
        default: return null;
      }
    }

    function write() {
      var built = build();
      if (built === null || built === spec.value) { return; }
      spec.value = built;
      spec.dispatchEvent(new Event("input", { bubbles: true }));
    }

    function setTime(hour, minute) { $("#at-time").value = pad(hour) + ":" + pad(minute); }

    // The expression, read back into the builder: the mode that writes it, or "custom".
    function read() {
      var text = spec.value.trim().replace(/\s+/g, " ");
      var m;
      if ((m = /^\*\/(\d+) \* \* \* \*$/.exec(text)) && +m[1] >= 1 && +m[1] <= 59) {
        $("#every-minutes").value = m[1]; return "minutes";
      }
      if ((m = /^(\d+) \* \* \* \*$/.exec(text)) && +m[1] <= 59) {
        $("#at-minute").value = m[1]; return "hourly";
      }
      m = /^(\d+) (\d+) (\S+) \* (\S+)$/.exec(text);
      if (m && +m[1] <= 59 && +m[2] <= 23) {
        var dom = m[3], dow = m[4];
        if (dom === "*" && dow === "*") { setTime(+m[2], +m[1]); return "daily"; }
        if (dom === "*" && (dow === "1-5" || dow.toUpperCase() === "MON-FRI")) { setTime(+m[2], +m[1]); return "weekdays"; }
        if (dom === "*" && /^[0-6](,[0-6])*$/.test(dow)) {
          var listed = dow.split(",");
          days.forEach(function (d) { d.checked = listed.indexOf(d.value) >= 0; });
          setTime(+m[2], +m[1]); return "weekly";
        }
        if (dow === "*" && /^\d+$/.test(dom) && +dom >= 1 && +dom <= 31) {
          $("#month-day").value = dom; setTime(+m[2], +m[1]); return "monthly";
        }
        if (dow === "*" && dom.toUpperCase() === "L") { setTime(+m[2], +m[1]); return "monthly-last"; }
      }
      if ((m = /^@every (\d+)([mhd])$/.exec(text))) {
        $("#every-amount").value = m[1]; $("#every-unit").value = m[2]; return "interval";
      }
      return "custom";
    }

    mode.addEventListener("change", function () { show(); write(); });
    form.querySelectorAll(".builder-part input, .builder-part select").forEach(function (el) {
      if (el.id === "anchor") { return; }
      el.addEventListener("input", write);
      el.addEventListener("change", write);
    });
    spec.addEventListener("input", function (event) {
      if (event.isTrusted) { mode.value = read(); show(); }
    });
    mode.value = read();
    show();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.schedule-form").forEach(setup);
  });
})();
