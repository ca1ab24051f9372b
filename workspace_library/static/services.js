// The service pages: the list, and one service with its controls, online test, metrics and logs.
(function () {
  "use strict";
  const page = window.LIBRARY;
  const ui = window.LibraryUI;
  const $ = (selector) => document.querySelector(selector);

  function servicePage() {
    const path = "services/" + page.item_id;
    let service = null;
    let drawnForm = false;
    const models = {};  // model id -> the model as the viewer may see it (null: not visible), asked once
    async function show(s) {
      service = s;
      $("#title").textContent = `${s.owner}/${s.name}`;
      const status = $("#status");
      status.className = "badge status-" + s.status;
      status.textContent = s.status;
      $("#message").textContent = s.message || "";
      const rows = [["Address", window.location.origin + s.address], ["Replicas", s.replicas],
                    ["Visibility", s.visibility], ["Image", s.image], ["Revision", s.revision]];
      $("#fields").replaceChildren(...rows.flatMap(([label, value]) => ui.field(label, value)));
      if (s.model_id) {
        if (!(s.model_id in models)) {  // a model the viewer may not see is shown by its number
          models[s.model_id] = await ui.api("GET", "models/" + s.model_id).catch(() => null);
        }
        const model = models[s.model_id];
        const [dt, dd] = ui.field("Model", "");
        dd.replaceChildren(ui.link(model ? `${model.name} ${model.version}` : `model #${s.model_id}`,
                                   page.prefix + "models/" + s.model_id));
        $("#fields").append(dt, dd);
        const run = model && model.lineage && model.lineage.run;
        if (run) {  // "view task": the training run that made the model
          const [rt, rd] = ui.field("Training run", "");
          const link = ui.link(run.name, page.prefix + "runs/" + run.id);
          link.id = "view-run";
          rd.replaceChildren(link);
          $("#fields").append(rt, rd);
        }
      }
      const may = ui.mayChange(s);  // what the viewer may not do is not shown
      $("#actions").hidden = !may;
      $("#share").hidden = !may;
      $("#redo-image").hidden = !may || Boolean(s.model_id);  // a model's service redoes onto its newest version
      $("#redo").hidden = !s.model_id;
      $("#metrics").replaceChildren(...Object.entries(s.metrics || {}).flatMap(([k, v]) => ui.field(k, v)));
      if (!drawnForm) {
        $("#replicas").value = Math.max(1, s.replicas);
        $("#share-visibility").value = s.visibility;
        $("#share-description").value = s.description || "";
        $("#test-fields").replaceChildren(...(s.interface.params || []).map((p) => {
          const col = document.createElement("div");
          col.className = "col-md-6";
          const label = document.createElement("label");
          label.className = "form-label";
          label.textContent = `${p.name} (${p.type}${p.required ? ", required" : ""})`;
          const input = document.createElement("input");
          input.className = "form-control";
          input.name = p.name;
          input.dataset.type = p.type;
          input.value = p.test_value ?? "";
          label.htmlFor = input.id = "param-" + p.name;
          col.append(label, input);
          return col;
        }));
        drawnForm = true;
      }
    }
    async function refresh() {
      try {
        await show(await ui.api("GET", path));
        const response = await fetch(`${page.prefix}api/${path}/logs`, { credentials: "same-origin", headers: { "X-XSRFToken": page.xsrf } });
        // the log holds callers' requests: only the owner (and admins) read it; others are told so
        $("#logs").textContent = response.ok ? (await response.text()).slice(-20000)
          : (await response.json()).error.message;
      } catch (e) { ui.flash(e.message); }
    }
    async function act(suffix, body, method = "POST") {
      try {
        const result = await ui.api(method, path + suffix, body);
        if (method === "DELETE") window.location = page.prefix + "services";
        else refresh();
        return result;
      } catch (e) { ui.flash(e.message); }
    }
    $("#start").addEventListener("click", () => act("/scale", { replicas: parseInt($("#replicas").value, 10) }));
    $("#stop").addEventListener("click", () => act("/stop", {}));
    $("#share").addEventListener("submit", (event) => {
      event.preventDefault();
      act("", { visibility: $("#share-visibility").value, description: $("#share-description").value }, "PATCH");
    });
    $("#redo-image").addEventListener("submit", async (event) => {
      event.preventDefault();
      ui.flash("");
      try {  // a new version of the algorithm the service serves, then a rolling redo onto it
        const current = await ui.api("GET", "algorithms/" + service.algorithm_id);
        const item = await publishPredictImage(current.name, current.description);
        $("#upload-progress").textContent = `redoing onto ${item.name} ${item.version}`;
        await act("/redo", { algorithm: item.id });
      } catch (e) { ui.flash(e.message); }
    });
    $("#redo").addEventListener("click", async () => {
      if (!service.model_id) return act("/redo", {});
      const model = await ui.api("GET", "models/" + service.model_id);
      const newest = (await ui.api("GET", `models?name=${encodeURIComponent(model.name)}&owner=${encodeURIComponent(model.owner)}&per_page=1`)).items[0];
      act("/redo", { model: newest.id });
    });
    $("#delete").addEventListener("click", () => { if (confirm("Delete this service?")) act("", undefined, "DELETE"); });
    $("#test-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const params = {};
      for (const input of document.querySelectorAll("#test-fields input")) {
        const type = input.dataset.type;
        params[input.name] = type === "Integer" ? parseInt(input.value, 10)
          : type === "Float" ? parseFloat(input.value) : type === "Boolean" ? input.value === "true" : input.value;
      }
      $("#test-result").textContent = "calling...";
      const result = await act("/test", { params });
      if (result) {
        $("#test-result").textContent = `HTTP ${result.status} in ${result.latency_ms} ms\n` +
          JSON.stringify(result.response, null, 2);
      }
    });
    refresh();
    setInterval(refresh, 3000);
  }

  // The algorithm an image was built for, by the contract's names: `predict-<name>-<cpu|gpu>.tar` as `ws build`
  // writes it, or the last part of a reference (`.../predict-<name>:<tag>`); the validation checks it against
  // the image's own label and says so if it differs.
  function imageName(file, reference) {
    const tar = file && /^predict-(.+)-(cpu|gpu)\.tar$/.exec(file.name);
    if (tar) return tar[1];
    const last = reference && reference.split("/").pop().split(/[:@]/)[0].replace(/^predict-/, "");
    return last || null;
  }

  const newVersion = () => new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14);

  // A predict image chosen on the page (a tar or a reference to pull), published as a new private version of
  // the algorithm it was built for (or *name*), validated like any upload and brought online: what a service
  // made by hand serves.
  async function publishPredictImage(name, description) {
    const file = $("#predict").files[0];
    const reference = $("#predict-reference").value.trim();
    if (!file && !reference) throw new Error("choose the predict image's tar, or name an image to pull");
    const item = await ui.api("POST", "algorithms", { name: name || imageName(file, reference), version: newVersion(),
                                                        description });
    if (file) {
      await new Promise((resolve) => ui.upload(`algorithms/${item.id}/images`, [["predict", file]], resolve));
    } else {
      await ui.pullImages(item.id, [["predict", reference]]);
    }
    const validated = await ui.untilValidated(item.id);
    if (validated.status !== "ready") {
      throw new Error("the image was refused: " + (validated.errors || []).map((e) => `${e.code}: ${e.message}`).join("; "));
    }
    $("#upload-progress").textContent = "validated; bringing it online";
    return ui.api("POST", `algorithms/${item.id}/online`);
  }

  function showInterface(item) {
    const iface = (item.predict && item.predict.interface) || {};
    $("#interface tbody").replaceChildren(...(iface.params || []).map((p) =>
      ui.row([p.name, p.type, p.required ? "yes" : "no", p.test_value ?? "", p.description || ""])));
    $("#interface").classList.toggle("d-none", !(iface.params || []).length);
  }

  function serviceNewPage() {
    const form = $("#service-new");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      ui.flash("");
      if (!form.reportValidity()) return;
      try {
        const name = $("#name").value.trim();
        const item = await publishPredictImage(null, $("#description").value);
        showInterface(item);
        $("#upload-progress").textContent = "starting the service";
        const service = await ui.api("POST", "services", {
          name, algorithm: item.id, description: $("#description").value, visibility: $("#visibility").value,
          replicas: parseInt($("#replicas").value, 10) });
        window.location = page.prefix + "services/" + service.id;
      } catch (e) { ui.flash(e.message); }
    });
  }

  const views = {
    service_new: serviceNewPage,
    services: () => ui.listPage("services", (s) => [s.name, ui.owner(s.owner), ui.badge(s.status), s.replicas, s.address, s.visibility]),
    service: servicePage,
  };
  if (views[page.view]) views[page.view]();
})();
