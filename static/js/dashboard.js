/* The receivables dashboard's charts (Chart.js, served locally).
 *
 * The page is complete without this script: every chart's figures are in a table under it. Once a
 * chart is drawn, its table is hidden visually (screen readers still read it) and a "Show the
 * figures" button brings it back. If Chart.js did not load, nothing changes and the tables stay.
 */
(function () {
  "use strict";

  const source = document.getElementById("dashboard-charts");
  if (!source || typeof window.Chart === "undefined") {
    return;
  }
  const data = JSON.parse(source.textContent);
  const Chart = window.Chart;
  const style = getComputedStyle(document.body);
  const textColor = style.getPropertyValue("--bs-body-color").trim() || "#212529";
  const gridColor = style.getPropertyValue("--bs-border-color-translucent").trim() || "rgba(0,0,0,.1)";

  const money = new Intl.NumberFormat(undefined, {
    style: "currency", currency: data.currency, maximumFractionDigits: 2, minimumFractionDigits: 2,
  });
  const moneyShort = new Intl.NumberFormat(undefined, {
    style: "currency", currency: data.currency, notation: "compact", maximumFractionDigits: 1,
  });
  const dayMonth = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
  const monthYear = new Intl.DateTimeFormat(undefined, { month: "short", year: "numeric", timeZone: "UTC" });
  const isoDay = (iso) => new Date(iso + "T00:00:00Z");

  // Colours after the Okabe–Ito palette (apart for the common colour-vision deficiencies), darkened
  // where needed to keep 3:1 against the white card; every series is also named in the legend and
  // the table, and the trend's two lines differ in dash and point shape too.
  const COLOURS = {
    promised: "#009E73",
    expected: "#0072B2",
    overdue: "#C26A00",
    cumulative: "#1f2328",
    dso: "#0072B2",
    overduePercent: "#D55E00",
    aging: ["#009E73", "#8F7F00", "#C26A00", "#B22222", "#6B0F1A"],
  };

  Chart.defaults.color = textColor;
  Chart.defaults.borderColor = gridColor;
  Chart.defaults.font.family = style.fontFamily;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.plugins.legend.labels.boxWidth = 14;
  if (window.matchMedia("(prefers-reduced-motion: reduce)").matches) {
    Chart.defaults.animation = false;
  }

  function moneyTooltip(context) {
    const value = context.parsed.y ?? context.parsed.x;
    return `${context.dataset.label}: ${money.format(value)}`;
  }

  /* Draw the chart of the figure named `name`, then hide its table visually behind a toggle. */
  function draw(name, config) {
    const figure = document.querySelector(`[data-chart="${name}"]`);
    if (!figure) {
      return;
    }
    const box = figure.querySelector(".chart-box");
    box.classList.remove("d-none");
    try {
      new Chart(figure.querySelector("canvas"), config);
    } catch (error) {
      box.classList.add("d-none");
      console.error(`The ${name} chart could not be drawn`, error);
      return;
    }
    const figures = figure.querySelector(".chart-figures");
    const toggle = figure.querySelector(".chart-toggle");
    figures.classList.add("visually-hidden");
    toggle.classList.remove("d-none");
    toggle.addEventListener("click", () => {
      const showing = figures.classList.toggle("visually-hidden") === false;
      toggle.setAttribute("aria-expanded", String(showing));
      toggle.textContent = showing ? "Hide the figures" : "Show the figures";
    });
  }

  const forecast = data.forecast;
  draw("forecast", {
    type: "bar",
    data: {
      labels: forecast.labels.map((iso) => dayMonth.format(isoDay(iso))),
      datasets: [
        { label: "Promised", data: forecast.promised, backgroundColor: COLOURS.promised, stack: "cash", order: 1 },
        {
          label: "Expected from history", data: forecast.expected, backgroundColor: COLOURS.expected,
          stack: "cash", order: 1,
        },
        {
          label: "Overdue, expected soon", data: forecast.overdue, backgroundColor: COLOURS.overdue,
          stack: "cash", order: 1,
        },
        {
          type: "line", label: "Cumulative", data: forecast.cumulative, yAxisID: "cumulative",
          borderColor: COLOURS.cumulative, backgroundColor: COLOURS.cumulative, borderWidth: 2,
          pointRadius: 3, tension: 0.2, order: 0,
        },
      ],
    },
    options: {
      interaction: { mode: "index", intersect: false },
      plugins: {
        // In the order of the data: the stacked series, then the cumulative line.
        legend: { position: "bottom", labels: { sort: (a, b) => a.datasetIndex - b.datasetIndex } },
        tooltip: {
          itemSort: (a, b) => a.datasetIndex - b.datasetIndex,
          callbacks: {
            title: (items) => `Week of ${items[0].label}`,
            label: moneyTooltip,
          },
        },
      },
      scales: {
        x: { stacked: true, grid: { display: false }, title: { display: true, text: "Week starting" } },
        y: {
          stacked: true, beginAtZero: true,
          title: { display: true, text: `Per week (${data.currency})` },
          ticks: { callback: (value) => moneyShort.format(value) },
        },
        cumulative: {
          position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
          title: { display: true, text: "Cumulative" },
          ticks: { callback: (value) => moneyShort.format(value) },
        },
      },
    },
  });

  const aging = data.aging;
  draw("aging", {
    type: "bar",
    data: {
      labels: ["Open invoices"],
      datasets: aging.labels.map((label, index) => ({
        label: `${label}: ${money.format(aging.values[index])}`,
        data: [aging.values[index]],
        backgroundColor: COLOURS.aging[index % COLOURS.aging.length],
        borderColor: "#fff",
        borderWidth: 1,
        stack: "aging",
      })),
    },
    options: {
      indexAxis: "y",
      plugins: {
        legend: { position: "bottom" },
        tooltip: { callbacks: { label: (context) => context.dataset.label } },
      },
      scales: {
        x: { stacked: true, beginAtZero: true, ticks: { callback: (value) => moneyShort.format(value) } },
        y: { stacked: true, display: false },
      },
    },
  });

  const trend = data.trend;
  draw("trend", {
    type: "line",
    data: {
      labels: trend.labels.map((iso) => monthYear.format(isoDay(iso))),
      datasets: [
        {
          label: "DSO (days)", data: trend.dso, yAxisID: "days", borderColor: COLOURS.dso,
          backgroundColor: COLOURS.dso, pointRadius: 4, pointStyle: "circle", tension: 0.2, spanGaps: true,
        },
        {
          label: "Overdue share (%)", data: trend.overdue_percent, yAxisID: "percent",
          borderColor: COLOURS.overduePercent, backgroundColor: COLOURS.overduePercent, borderDash: [6, 4],
          pointRadius: 4, pointStyle: "rectRot", tension: 0.2, spanGaps: true,
        },
      ],
    },
    options: {
      interaction: { mode: "index", intersect: false },
      plugins: {
        legend: { position: "bottom", labels: { usePointStyle: true } },
        tooltip: {
          callbacks: {
            label: (context) => context.datasetIndex === 0
              ? `DSO: ${context.parsed.y} days`
              : `Overdue: ${context.parsed.y}%`,
          },
        },
      },
      scales: {
        days: { position: "left", beginAtZero: true, title: { display: true, text: "DSO (days)" } },
        percent: {
          position: "right", beginAtZero: true, suggestedMax: 100, grid: { drawOnChartArea: false },
          title: { display: true, text: "Overdue (%)" }, ticks: { callback: (value) => `${value}%` },
        },
      },
    },
  });
})();
