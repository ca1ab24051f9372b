// The model pages: the list, and one version with its lineage, downloads, aliases, sharing and transfer training.
(function () {
  "use strict";
  const page = window.LIBRARY;
  const ui = window.LibraryUI;
  const $ = (selector) => document.querySelector(selector);
  const metrics = (m) => Object.entries(m.metrics || {}).filter(([, v]) => typeof v === "number")
    .slice(0, 3).map(([k, v]) => `${k} ${v}`).join(", ");

  function modelPage() {
    const path = "models/" + page.item_id;
    function show(model) {
      $("#title").textContent = `${model.name} ${model.version}`;
      $("#aliases").replaceChildren(...model.aliases.map((a) => {
        const span = document.createElement("span");
        span.className = "badge bg-success me-1 fs-6";
        span.textContent = a;
        return span;
      }));
      const lineage = model.lineage || {};
      const run = lineage.run ? ui.link(`${lineage.run.name} #${lineage.run.id}`, page.prefix + "runs/" + lineage.run.id) : "-";
      const parent = model.parent_id ? ui.link(`model #${model.parent_id}`, page.prefix + "models/" + model.parent_id) : "-";
      const rows = [["Owner", model.owner], ["Visibility", model.visibility], ["Files", `${model.files} (${model.size} bytes)`],
                    ["Trained by", run], ["Algorithm", lineage.algorithm], ["Dataset", lineage.dataset],
                    ["Hyperparameters", ui.pairs(lineage.hyperparameters)], ["Started from", parent],
                    ["Shared with", (model.shared_with || []).join(", ")]];
      $("#fields").replaceChildren(...rows.flatMap(([label, value]) => {
        const [dt, dd] = ui.field(label, value instanceof Node ? "" : value);
        if (value instanceof Node) dd.replaceChildren(value);
        return [dt, dd];
      }));
      $("#metrics").replaceChildren(...Object.entries(model.metrics || {}).flatMap(([k, v]) => ui.field(k, v)));
      $("#history tbody").replaceChildren(...(model.alias_history || []).map((e) =>
        ui.row([(e.at || "").replace("T", " ").slice(0, 19), e.alias, e.version || "(removed)", e.by])));
      $("#download-zip").href = `${page.prefix}api/${path}/download?format=zip`;
      $("#download-tgz").href = `${page.prefix}api/${path}/download?format=tar.gz`;
    }
    async function refresh() {
      try {
        const model = await ui.api("GET", path);
        show(model);
        if (!$("#service-name").value) $("#service-name").value = model.name;
        ui.basicsForm(path, model, show);
      } catch (e) { ui.flash(e.message); }
    }
    async function act(method, suffix, body, after) {
      try {
        const result = await ui.api(method, path + suffix, body);
        if (after) after(result); else refresh();
      } catch (e) { ui.flash(e.message); }
    }
    $("#alias-form").addEventListener("submit", (event) => {
      event.preventDefault();
      act("PUT", "/aliases/" + encodeURIComponent($("#alias").value));
    });
    $("#share-form").addEventListener("submit", (event) => {
      event.preventDefault();
      act("POST", "/share", { user: $("#share-user").value });
    });
    $("#transfer").addEventListener("click", () => act("POST", "/transfer", {}, (run) => {
      window.location = page.prefix + "runs/" + run.id;
    }));
    $("#service-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const service = await ui.api("POST", "services", { name: $("#service-name").value, model: Number(page.item_id),
                                                           replicas: Number($("#service-replicas").value) });
        window.location = page.prefix + "services/" + service.id;
      } catch (e) { ui.flash(e.message); }
    });
    $("#delete").addEventListener("click", () => {
      if (confirm("Delete this version and the files only it uses?")) {
        act("DELETE", "", undefined, () => { window.location = page.prefix + "models"; });
      }
    });
    refresh();
  }

  const views = {
    models: () => ui.listPage("models", (m) => [m.name, m.version, ui.owner(m.owner), m.aliases.join(", "), metrics(m),
                                                 m.visibility]),
    model: modelPage,
  };
  if (views[page.view]) views[page.view]();
})();
