// The usage charts of the admin's usage list: requests, tokens and latency per day, drawn
// with plotly.js from the JSON that the page carries (#usage-by-day, see usage.html).
"use strict";

(function () {
  const data = document.getElementById("usage-by-day");
  if (!data || typeof Plotly === "undefined") {
    return;
  }
  const days = JSON.parse(data.textContent);
  if (days.length === 0) {
    return;
  }
  const x = days.map((day) => day.day);
  const column = (name) => days.map((day) => day[name]);
  const color = getComputedStyle(document.body).color;

  function draw(id, traces, layout) {
    const element = document.getElementById(id);
    if (!element) {
      return;
    }
    Plotly.newPlot(element, traces, {
      title: { text: element.dataset.title },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: color },
      margin: { l: 60, r: 20, t: 40, b: 40 },
      legend: { orientation: "h", y: -0.15 },
      xaxis: { type: "date", tickformat: "%Y-%m-%d" },
      ...layout,
    }, { displayModeBar: false, responsive: true });
  }

  const bar = (name, values) => ({ type: "bar", name: name, x: x, y: values });
  const line = (name, values, dash) => ({
    type: "scatter", mode: "lines+markers", name: name, x: x, y: values, line: { dash: dash }, connectgaps: false,
  });

  const requests = [
    bar("finished", column("finished")),
    bar("failed", column("failed")),
    bar("cancelled", column("cancelled")),
  ];
  // Usage recorded before outcomes were counted (the totals of earlier versions) has requests only.
  const other = days.map((day) => day.requests - day.finished - day.failed - day.cancelled);
  if (other.some((count) => count > 0)) {
    requests.push(bar("outcome unknown", other));
  }
  draw("usage-requests-chart", requests, { barmode: "stack", yaxis: { rangemode: "tozero" } });
  draw("usage-tokens-chart", [
    bar("prompt", column("prompt_tokens")),
    bar("generated", column("generated_tokens")),
  ], { barmode: "group", yaxis: { rangemode: "tozero" } });
  draw("usage-latency-chart", [
    line("duration, mean", column("duration_ms_mean"), "solid"),
    line("duration, max", column("duration_ms_max"), "dot"),
    line("first token, mean", column("time_to_first_token_ms_mean"), "solid"),
    line("first token, max", column("time_to_first_token_ms_max"), "dot"),
  ], { yaxis: { rangemode: "tozero", title: { text: "ms" } } });
})();
