// The training-run pages: the list (with side-by-side comparison), the wizard, and the run page with its
// live log (server-sent events, resumed by the browser after a drop) and metric charts.
(function () {
  "use strict";
  const page = window.LIBRARY;
  const ui = window.LibraryUI;
  const $ = (selector) => document.querySelector(selector);
  const COLORS = ["#0d6efd", "#dc3545", "#198754", "#fd7e14", "#6f42c1", "#20c997"];
  const AXES = ["epoch", "step", "line"];

  // One SVG line chart: *series* is [{label, points: [[x, y], ...]}].
  function chart(title, series) {
    const width = 360, height = 200, pad = 36;
    const all = series.flatMap((s) => s.points);
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
    const [y0, y1] = [Math.min(...ys, 0), Math.max(...ys, Math.min(...ys, 0) + 1e-9)];
    const sx = (x) => pad + ((x - x0) / (x1 - x0)) * (width - 2 * pad);
    const sy = (y) => height - pad + ((y0 - y) / (y1 - y0)) * (height - 2 * pad);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("class", "chart");
    svg.setAttribute("data-metric", title);
    const add = (tag, attrs, text) => {
      const el = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      if (text != null) el.textContent = text;
      svg.appendChild(el);
      return el;
    };
    add("text", { x: pad, y: 16 }, title);
    add("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, stroke: "#999" });
    add("line", { x1: pad, y1: pad, x2: pad, y2: height - pad, stroke: "#999" });
    add("text", { x: 2, y: sy(y1) + 4 }, +y1.toPrecision(3));
    add("text", { x: 2, y: sy(y0) + 4 }, +y0.toPrecision(3));
    add("text", { x: pad, y: height - pad + 16 }, x0);
    add("text", { x: width - pad - 10, y: height - pad + 16 }, x1);
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      add("polyline", { fill: "none", stroke: color, "stroke-width": 2,
                        points: s.points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" ") });
      for (const [x, y] of s.points) add("circle", { cx: sx(x), cy: sy(y), r: 2.5, fill: color });
      if (series.length > 1) add("text", { x: width - pad - 80, y: 16 + 13 * i, fill: color }, s.label);
    });
    return svg;
  }

  // {metric: [[x, y], ...]} from a run's metric points
  function seriesOf(points) {
    const out = {};
    points.forEach((p, index) => {
      const axis = AXES.find((a) => a in p && a !== "line");
      const x = axis ? p[axis] : index + 1;
      for (const [name, value] of Object.entries(p)) {
        if (AXES.includes(name) || typeof value !== "number") continue;
        (out[name] = out[name] || []).push([x, value]);
      }
    });
    return out;
  }

  function listPage() {
    let current = 1;
    const selected = new Set();
    async function load() {
      const params = new URLSearchParams({ page: current, per_page: 20 });
      for (const [key, value] of new FormData($("#filters"))) if (value) params.set(key, value);
      try {
        const data = await ui.api("GET", "runs?" + params);
        $("#items tbody").replaceChildren(...data.items.map((run) => {
          const box = document.createElement("input");
          box.type = "checkbox";
          box.className = "form-check-input me-2 compare-box";
          box.checked = selected.has(run.id);
          box.addEventListener("click", (event) => {
            event.stopPropagation();
            if (box.checked) selected.add(run.id); else selected.delete(run.id);
            $("#compare").disabled = selected.size < 2;
          });
          const name = document.createElement("span");
          name.append(box, ui.link(run.name, page.prefix + "runs/" + run.id));
          return ui.row([name, run.algorithm.label, run.dataset.label, ui.badge(run.status),
                         Object.entries(run.metrics || {}).filter(([, v]) => typeof v === "number")
                           .slice(0, 3).map(([k, v]) => `${k} ${v}`).join(", "),
                         (run.created || "").replace("T", " ").slice(0, 19)]);
        }));
        const pages = Math.max(1, Math.ceil(data.total / data.per_page));
        $("#page-info").textContent = `page ${data.page} of ${pages} (${data.total})`;
        $("#prev").disabled = data.page <= 1;
        $("#next").disabled = data.page >= pages;
      } catch (e) { ui.flash(e.message); }
    }
    $("#filters").addEventListener("submit", (event) => { event.preventDefault(); current = 1; load(); });
    $("#prev").addEventListener("click", () => { current -= 1; load(); });
    $("#next").addEventListener("click", () => { current += 1; load(); });
    $("#compare").addEventListener("click", async () => {
      const runs = await Promise.all([...selected].map(async (id) => ({
        run: await ui.api("GET", "runs/" + id), metrics: await ui.api("GET", `runs/${id}/metrics`) })));
      const names = new Set(runs.flatMap((r) => Object.keys(seriesOf(r.metrics.points))));
      const box = $("#comparison");
      box.replaceChildren();
      const h = document.createElement("h2");
      h.className = "h5";
      h.textContent = "Comparison";
      box.appendChild(h);
      const charts = document.createElement("div");
      charts.className = "d-flex flex-wrap gap-4";
      for (const name of names) {
        charts.appendChild(chart(name, runs.map((r) => ({
          label: `${r.run.name} #${r.run.id}`, points: seriesOf(r.metrics.points)[name] || [] }))));
      }
      box.appendChild(charts);
      const table = document.createElement("table");
      table.className = "table table-sm mt-3";
      const keys = [...new Set(runs.flatMap((r) => [...Object.keys(r.run.hyperparameters),
                                                    ...Object.keys(r.run.metrics || {})]))];
      table.appendChild(ui.row(["", ...runs.map((r) => `${r.run.name} #${r.run.id}`)]));
      for (const key of keys) {
        table.appendChild(ui.row([key, ...runs.map((r) => (key in r.run.hyperparameters
          ? r.run.hyperparameters[key] : (r.run.metrics || {})[key]) ?? "-")]));
      }
      box.appendChild(table);
    });
    load();
  }

  function hyperparameterField(name, spec) {
    const col = document.createElement("div");
    col.className = "col-md-3";
    const label = document.createElement("label");
    label.className = "form-label";
    label.htmlFor = "hp-" + name;
    label.textContent = name + (spec.required ? " *" : "");
    let input;
    if (spec.choices) {
      input = document.createElement("select");
      input.className = "form-select";
      for (const choice of spec.choices) input.appendChild(new Option(choice, choice, false, choice === spec.default));
    } else {
      input = document.createElement("input");
      input.className = "form-control";
      input.value = spec.default ?? "";
      if (spec.type === "Integer" || spec.type === "Float") {
        input.type = "number";
        input.step = spec.type === "Integer" ? "1" : "any";
        if (spec.range) { input.min = spec.range[0]; input.max = spec.range[1]; }
      }
    }
    input.id = "hp-" + name;
    input.dataset.name = name;
    input.dataset.type = spec.type || "String";
    input.title = spec.description || "";
    const help = document.createElement("div");  // what the algorithm says of it, and what it takes
    help.className = "form-text hp-help";
    help.id = "hp-help-" + name;
    input.setAttribute("aria-describedby", help.id);
    const takes = spec.range ? `${spec.range[0]} to ${spec.range[1]}` : spec.choices ? spec.choices.join(", ") : "";
    help.textContent = [spec.description, takes && `(${takes})`].filter(Boolean).join(" ");
    col.append(label, input, help);
    return col;
  }

  // The wizard's steps (manual 2.3.1), one at a time; Next checks the step's own fields first.
  function wizardSteps() {
    const sections = [...document.querySelectorAll(".wizard-step")];
    let current = 0;
    function show(index) {
      current = index;
      sections.forEach((section, i) => section.classList.toggle("d-none", i !== index));
      document.querySelectorAll("#steps .nav-link").forEach((link, i) => {
        link.classList.toggle("active", i === index);
        link.setAttribute("aria-current", i === index ? "step" : "false");
      });
      $("#back").disabled = index === 0;
      $("#next").classList.toggle("d-none", index === sections.length - 1);
    }
    function valid(section) {
      const fields = [...section.querySelectorAll("input, select")];
      return fields.every((field) => field.reportValidity());
    }
    $("#back").addEventListener("click", () => show(Math.max(0, current - 1)));
    $("#next").addEventListener("click", () => { if (valid(sections[current])) show(current + 1); });
    show(0);
    return { valid: () => sections.every((section, i) => valid(section) || (show(i), false)) };
  }

  function newPage() {
    let algorithms = [];
    let datasets = [];
    const steps = wizardSteps();
    const editing = new URLSearchParams(window.location.search).get("edit");  // a saved draft (manual 2.3.3)
    async function loadAlgorithms() {
      const params = new URLSearchParams({ status: "online", per_page: 100 });
      if ($("#purpose").value) params.set("purpose_first", $("#purpose").value);
      const source = $("#source").value;  // mine, presets, or others' public ones (manual 2.3.1)
      if (source === "preset") params.set("visibility", "preset");
      // the list has no images; an online version with a train part has a validated train image
      algorithms = (await ui.api("GET", "algorithms?" + params)).items.filter((a) => a.train
        && (source !== "mine" || a.owner === page.user)
        && (source !== "public" || (a.visibility === "public" && a.owner !== page.user)));
      $("#algorithm").replaceChildren(...algorithms.map((a) => new Option(
        `${a.name} ${a.version} (${a.owner === page.user ? "mine" : a.visibility + ", " + a.owner})`, a.id)));
      if (!algorithms.length) ui.flash("no online algorithm of this purpose among these; choose another source or purpose");
      else ui.flash("");
      await chooseAlgorithm();
    }
    async function chooseAlgorithm() {
      const algorithm = algorithms.find((a) => String(a.id) === $("#algorithm").value);
      const envVars = (algorithm && algorithm.train.env_vars) || {};
      $("#hyperparameters").replaceChildren(...Object.entries(envVars)
        .filter(([n]) => !page.run_variables.includes(n)).map(([n, s]) => hyperparameterField(n, s)));
      const params = new URLSearchParams({ status: "online", per_page: 100 });
      const format = algorithm && algorithm.train.dataset_format;
      if (format) params.set("format", format);
      if (algorithm) params.set("purpose_first", algorithm.purpose.first);  // datasets of the algorithm's purpose
      datasets = (await ui.api("GET", "datasets?" + params)).items;
      const chosen = $("#dataset").value;  // a choice the user made survives a reload of the list
      $("#dataset").replaceChildren(...datasets.map((d) => new Option(
        `${d.name} ${d.version} (${d.format}, ${d.owner})`, d.id, false, String(d.id) === chosen)));
      chooseDataset();
    }
    function chooseDataset() {
      const dataset = datasets.find((d) => String(d.id) === $("#dataset").value);
      const independent = Boolean(dataset && dataset.test_mode === "independent");
      $("#ratio-box").classList.toggle("d-none", independent);
      $("#independent-note").classList.toggle("d-none", !independent);
    }
    async function submit(start) {
      const hyperparameters = {};
      for (const input of document.querySelectorAll("#hyperparameters [data-name]")) {
        const type = input.dataset.type;
        hyperparameters[input.dataset.name] = type === "Integer" ? parseInt(input.value, 10)
          : type === "Float" ? parseFloat(input.value) : type === "Boolean" ? input.value === "true" : input.value;
      }
      const dataset = datasets.find((d) => String(d.id) === $("#dataset").value);
      const body = {
        name: $("#name").value, description: $("#description").value,
        algorithm: parseInt($("#algorithm").value, 10), dataset: parseInt($("#dataset").value, 10),
        hyperparameters, max_runtime: parseInt($("#max-runtime").value, 10), start,
        resources: { device: $("#device").value, mem_gb: parseFloat($("#mem").value), cpus: parseFloat($("#cpus").value) },
      };
      if (dataset && dataset.test_mode !== "independent") body.train_ratio = parseFloat($("#train-ratio").value);
      if (!steps.valid()) return;
      try {
        let run;
        if (editing) {
          delete body.start;
          run = await ui.api("PATCH", "runs/" + editing, body);
          if (start) await ui.api("POST", `runs/${editing}/start`);
        } else {
          run = await ui.api("POST", "runs", body);
        }
        window.location = page.prefix + "runs/" + run.id;
      } catch (e) { ui.flash(e.message); }
    }
    async function loadDraft() {
      const run = await ui.api("GET", "runs/" + editing);
      $("#wizard-title").textContent = `Edit training run ${run.name}`;
      document.title = `Edit ${run.name}`;
      $("#name").value = run.name;
      $("#description").value = run.description || "";
      await loadAlgorithms();
      if (!algorithms.some((a) => a.id === run.algorithm.id)) {
        ui.flash(`${run.algorithm.label} is no longer online: choose another algorithm`);
      } else {
        $("#algorithm").value = run.algorithm.id;
        await chooseAlgorithm();
      }
      for (const input of document.querySelectorAll("#hyperparameters [data-name]")) {
        if (input.dataset.name in run.hyperparameters) input.value = run.hyperparameters[input.dataset.name];
      }
      $("#dataset").value = run.dataset.id;
      chooseDataset();
      if (run.train_ratio != null) $("#train-ratio").value = run.train_ratio;
      $("#device").value = run.resources.device;
      $("#mem").value = run.resources.mem_gb;
      $("#cpus").value = run.resources.cpus;
      $("#max-runtime").value = run.max_runtime;
    }
    $("#purpose").addEventListener("change", () => loadAlgorithms().catch((e) => ui.flash(e.message)));
    $("#source").addEventListener("change", () => loadAlgorithms().catch((e) => ui.flash(e.message)));
    $("#algorithm").addEventListener("change", () => chooseAlgorithm().catch((e) => ui.flash(e.message)));
    $("#dataset").addEventListener("change", chooseDataset);
    $("#save").addEventListener("click", () => submit(false));
    $("#run-new").addEventListener("submit", (event) => { event.preventDefault(); submit(true); });
    (editing ? loadDraft() : loadAlgorithms()).catch((e) => ui.flash(e.message));
  }

  function runPage() {
    const path = "runs/" + page.item_id;
    const log = $("#log");
    let stream = null;
    let model = null;  // what the run registered, once it succeeded

    function show(run) {
      $("#title").textContent = `${run.name} #${run.id}`;
      const status = $("#status");
      status.className = "badge status-" + run.status;
      status.textContent = run.status + (run.reason ? ` (${run.reason})` : "");
      $("#message").textContent = run.message || "";
      const rows = [["Algorithm", run.algorithm.label], ["Dataset", run.dataset.label],
                    ["Hyperparameters", ui.pairs(run.hyperparameters)],
                    ["Train ratio / seed", `${run.train_ratio ?? "independent test set"} / ${run.seed}`],
                    ["Resources", `${run.resources.device}, ${run.resources.mem_gb} GB, ${run.resources.cpus} CPUs`],
                    ["Image", run.image_digest || run.image], ["Started", run.started], ["Finished", run.finished]];
      $("#fields").replaceChildren(...rows.flatMap(([label, value]) => ui.field(label, value)));
      if (model) {  // the model this run registered, by name and version
        const [dt, dd] = ui.field("Model", "");
        dd.replaceChildren(ui.link(`${model.name} ${model.version}`, page.prefix + "models/" + model.id));
        $("#fields").append(dt, dd);
      }
      $("#final").replaceChildren(...Object.entries(run.metrics || {}).flatMap(([k, v]) => ui.field(k, v)));
      const mine = page.admin || run.owner === page.user;  // what cannot be done now is not shown
      $("#start").hidden = !mine || run.status !== "draft";
      $("#edit").classList.toggle("d-none", run.status !== "draft" || run.owner !== page.user);
      $("#edit").href = `${page.prefix}runs/new?edit=${run.id}`;
      $("#stop").hidden = !mine || !["queued", "starting", "running"].includes(run.status);
      $("#delete").hidden = !mine || ["queued", "starting", "running", "stopping"].includes(run.status);
      $("#download-log").href = `${page.prefix}api/${path}/log`;
    }

    async function drawCharts() {
      const metrics = await ui.api("GET", path + "/metrics");
      const series = seriesOf(metrics.points);
      $("#charts").replaceChildren(...Object.entries(series).map(([name, points]) =>
        chart(name, [{ label: name, points }])));
    }

    async function refresh() {
      try {
        const run = await ui.api("GET", path);
        if (run.status === "succeeded" && !model) {
          model = (await ui.api("GET", `models?run=${run.id}`)).items[0] || null;
        }
        show(run);
        await drawCharts();
        if (!stream && run.status !== "draft") follow();
        return run;
      } catch (e) { ui.flash(e.message); }
    }

    function follow() {
      // the browser resends Last-Event-ID when it reconnects, so no line is lost or repeated
      stream = new EventSource(`${page.prefix}api/${path}/log?follow=1&_xsrf=${encodeURIComponent(page.xsrf)}`);
      let pending = null;
      stream.onmessage = (event) => {
        log.append(event.data + "\n");
        log.scrollTop = log.scrollHeight;
        if (event.data.startsWith("metric:") && !pending) {
          pending = setTimeout(() => { pending = null; drawCharts(); }, 300);
        }
      };
      stream.addEventListener("end", () => { stream.close(); refresh(); });
    }

    async function act(method, suffix) {
      try {
        const result = await ui.api(method, path + suffix);
        if (method === "DELETE") window.location = page.prefix + "runs";
        else if (suffix === "/rerun") window.location = page.prefix + "runs/" + result.id;
        else refresh();
      } catch (e) { ui.flash(e.message); }
    }
    $("#start").addEventListener("click", () => act("POST", "/start"));
    $("#stop").addEventListener("click", () => act("POST", "/stop"));
    $("#rerun").addEventListener("click", () => act("POST", "/rerun"));
    $("#delete").addEventListener("click", () => { if (confirm("Delete this run and its log?")) act("DELETE", ""); });
    refresh();
    setInterval(() => { if (!stream || stream.readyState === 2) refresh(); }, 3000);
  }

  const views = { runs: listPage, run_new: newPage, run: runPage };
  if (views[page.view]) views[page.view]();
})();
