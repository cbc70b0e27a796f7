// The aging page: the stacked bar chart of the buckets per owner rep, and the rows that open
// under a customer to show its invoices open on the report's day (loaded once with htmx).
(function () {
  "use strict";

  // ColorBrewer's RdYlBu, blue for current to red for 90+: ordered, and told apart with the
  // common kinds of colour blindness. The figures are also on the page as text.
  var BUCKET_COLOURS = {
    current: "#4575b4",
    "1_30": "#91bfdb",
    "31_60": "#e6c229",
    "61_90": "#fc8d59",
    over_90: "#d73027",
  };

  function drawChart() {
    var source = document.getElementById("aging-chart-data");
    var canvas = document.getElementById("aging-chart");
    if (!source || !canvas || typeof window.Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    var money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    var wholeMoney = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
    var reduceMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    // Tall enough for every rep's bar to carry a readable label.
    canvas.parentElement.style.height = Math.max(220, 48 * data.labels.length + 90) + "px";
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.datasets.map(function (dataset) {
          return {
            label: dataset.label,
            data: dataset.data,
            backgroundColor: BUCKET_COLOURS[dataset.key],
            borderColor: "#ffffff",
            borderWidth: 1,
          };
        }),
      },
      options: {
        indexAxis: "y",
        maintainAspectRatio: false,
        animation: reduceMotion ? false : { duration: 300 },
        scales: {
          x: {
            stacked: true,
            title: { display: true, text: "Open invoices (" + data.currency + ")" },
            ticks: {
              callback: function (value) {
                return wholeMoney.format(value);
              },
            },
          },
          y: { stacked: true },
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (context) {
                return context.dataset.label + ": " + money.format(context.parsed.x) + " " + data.currency;
              },
            },
          },
        },
      },
    });
  }

  function toggleInvoices(event) {
    var link = event.target.closest("a[data-aging-detail]");
    if (!link || typeof window.htmx === "undefined") {
      return; // without htmx the link opens the customer's invoices on a page of their own
    }
    event.preventDefault();
    var row = document.getElementById(link.dataset.agingDetail);
    var open = link.getAttribute("aria-expanded") === "true";
    if (open) {
      row.hidden = true;
      link.setAttribute("aria-expanded", "false");
      link.classList.remove("active");
      return;
    }
    var show = function () {
      row.hidden = false;
      link.setAttribute("aria-expanded", "true");
      link.classList.add("active");
    };
    if (row.dataset.loaded) {
      show();
      return;
    }
    link.classList.add("disabled");
    window.htmx
      .ajax("GET", link.getAttribute("href"), { target: "#" + row.id + "-cell", swap: "innerHTML" })
      .then(function () {
        row.dataset.loaded = "true";
        show();
      })
      .finally(function () {
        link.classList.remove("disabled");
      });
  }

  document.addEventListener("click", toggleInvoices);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawChart);
  } else {
    drawChart();
  }
})();
