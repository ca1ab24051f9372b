// The dataset pages: the list, the upload (offset protocol, resumed after a dropped connection), the details.
(function () {
  "use strict";
  const page = window.LIBRARY;
  const ui = window.LibraryUI;
  const $ = (selector) => document.querySelector(selector);
  const CHUNK = 8 * 1024 * 1024;

  function request(method, path, headers, body, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, page.prefix + "api/" + path);
      xhr.setRequestHeader("X-XSRFToken", page.xsrf);
      for (const [key, value] of Object.entries(headers || {})) xhr.setRequestHeader(key, value);
      if (onProgress) xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded));
      xhr.addEventListener("load", () => resolve(xhr));
      xhr.addEventListener("error", () => reject(new Error("the connection dropped")));
      xhr.send(body);
    });
  }

  // Send *file* as the dataset's *split* archive from the offset the library reports; on a dropped
  // connection, wait and ask again, so the bar goes on from the last byte that arrived.
  async function sendArchive(datasetId, split, file) {
    const path = `datasets/${datasetId}/archives/${split}`;
    const bar = $("#progress-" + split);
    const show = (done) => {
      const percent = Math.floor((100 * done) / file.size);
      bar.style.width = percent + "%";
      bar.textContent = percent + "%";
    };
    let failures = 0;
    for (;;) {
      try {
        const head = await request("HEAD", path);
        if (head.status !== 200) throw Object.assign(new Error(`HTTP ${head.status}`), { final: true });
        const offset = parseInt(head.getResponseHeader("Upload-Offset"), 10);
        show(offset);
        if (offset >= file.size) return;
        const patch = await request("PATCH", path, {
          "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream",
        }, file.slice(offset, offset + CHUNK), (loaded) => show(offset + loaded));
        if (patch.status >= 400 && patch.status !== 409) {
          const error = JSON.parse(patch.responseText || "{}").error || {};
          throw Object.assign(new Error(error.message || `HTTP ${patch.status}`), { final: true });
        }
        failures = 0;
        $("#upload-state").textContent = "";
      } catch (e) {
        if (e.final || failures >= 30) throw e;
        failures += 1;
        $("#upload-state").textContent = `${e.message}; resuming (try ${failures})...`;
        await new Promise((r) => setTimeout(r, Math.min(1000 * failures, 5000)));
      }
    }
  }

  async function sendArchives(dataset) {
    for (const split of Object.keys(dataset.uploads)) {
      const file = $("#file-" + split).files[0];
      if (!file) throw new Error(`choose the ${split} archive`);
      await sendArchive(dataset.id, split, file);
    }
  }

  function showSplits(mode) {
    $("#archive-test").classList.toggle("d-none", mode !== "independent");
  }

  function newPage() {
    purposeSelects("image", "classification");
    $("#annotation").value = "classification";
    showSplits($("#test-mode").value);
    $("#test-mode").addEventListener("change", () => showSplits($("#test-mode").value));
    $("#dataset-new").addEventListener("submit", async (event) => {
      event.preventDefault();
      const mode = $("#test-mode").value;
      const splits = mode === "independent" ? ["train", "test"] : ["train"];
      const archives = {};
      for (const split of splits) {
        const file = $("#file-" + split).files[0];
        if (!file) { ui.flash(`choose the ${split} archive (zip or rar)`); return; }
        archives[split] = { size: file.size, filename: file.name };
      }
      $("#create").disabled = true;
      try {
        const dataset = await ui.api("POST", "datasets", {
          name: $("#name").value, version: $("#version").value, format: $("#format").value,
          annotation: $("#annotation").value, test_mode: mode, description: $("#description").value,
          visibility: $("#visibility").value,
          purpose: { first: $("#purpose-first").value, second: $("#purpose-second").value }, archives,
        });
        await sendArchives(dataset);
        window.location = page.prefix + "datasets/" + dataset.id;
      } catch (e) { ui.flash(e.message); $("#create").disabled = false; }
    });
  }

  function bars(counts) {
    const entries = Object.entries(counts || {});
    const most = Math.max(1, ...entries.map(([, n]) => n));
    const table = document.createElement("table");
    table.className = "table table-sm class-bars";
    table.innerHTML = "<thead><tr><th>Class</th><th>Count</th><th class='w-50'></th></tr></thead>";
    const body = document.createElement("tbody");
    for (const [name, n] of entries) {
      const bar = document.createElement("div");
      bar.className = "class-bar";
      bar.style.width = (100 * n) / most + "%";
      body.appendChild(ui.row([name, n, bar]));
    }
    table.appendChild(body);
    return table;
  }

  function sample(dataset, split, kind, name) {
    const url = `${page.prefix}api/datasets/${dataset.id}/files/${split}/${name.split("/").map(encodeURIComponent).join("/")}`;
    const figure = document.createElement("figure");
    figure.className = "figure me-3";
    // fetched with the XSRF header (the hub accepts a cookie only with it), then shown from a blob
    const file = fetch(url, { credentials: "same-origin", headers: { "X-XSRFToken": page.xsrf } })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(r.statusText))));
    if (kind === "image") {
      const img = document.createElement("img");
      img.className = "sample-image figure-img";
      img.alt = name;
      file.then((blob) => { img.src = URL.createObjectURL(blob); }).catch(() => {});
      figure.appendChild(img);
    } else {
      const pre = document.createElement("pre");
      pre.className = "sample-text border p-2";
      file.then((blob) => blob.text()).then((t) => { pre.textContent = t.slice(0, 300); })
        .catch((e) => { pre.textContent = e.message; });
      figure.appendChild(pre);
    }
    const caption = document.createElement("figcaption");
    caption.className = "figure-caption";
    caption.textContent = name;
    figure.appendChild(caption);
    return figure;
  }

  function showDataset(dataset, drawn) {
    $("#title").textContent = `${dataset.name} ${dataset.version}`;
    const status = $("#status");
    status.className = "badge status-" + dataset.status;
    status.textContent = dataset.status;
    $("#progress").textContent = dataset.progress || "";
    const errors = dataset.errors || [];
    $("#errors").classList.toggle("d-none", errors.length === 0);
    $("#errors ul").replaceChildren(...errors.map((e) => {
      const li = document.createElement("li");
      li.className = "list-group-item list-group-item-danger";
      const where = [e.split, e.file, e.line ? "line " + e.line : null].filter(Boolean).join(", ");
      li.textContent = `${e.code}${where ? " (" + where + ")" : ""}: ${e.message}`;
      return li;
    }));
    const rows = [["Owner", dataset.owner], ["Format", dataset.format],
                  ["Purpose", `${dataset.purpose.first} / ${dataset.purpose.second}`],
                  ["Annotation", dataset.annotation], ["Test set", dataset.test_mode === "independent"
                    ? "independent test set (mounted at /project/dataset_test)" : "custom train ratio (TRAIN_RATIO)"],
                  ["Description", dataset.description]];
    $("#fields").replaceChildren(...rows.flatMap(([label, value]) => ui.field(label, value)));
    if (ui.mayChange(dataset) && !$("#share").dataset.bound) {  // filled once: a refresh keeps what is typed
      $("#share").dataset.bound = "1";
      $("#share").classList.remove("d-none");
      $("#share-visibility").value = dataset.visibility;
      $("#description").value = dataset.description || "";
      purposeSelects(dataset.purpose.first, dataset.purpose.second);
      choose($("#annotation"), dataset.annotation);
    }
    // once online, a version's purpose and annotation are fixed (publish a new version): not offered
    for (const field of document.querySelectorAll("#share .purpose-field")) {
      field.classList.toggle("d-none", !!dataset.was_online);
    }
    const may = ui.mayChange(dataset);  // what the viewer may not do, or cannot do now, is not shown
    $("#online").hidden = !may || !["ready", "offline"].includes(dataset.status);
    $("#offline").hidden = !may || dataset.status !== "online";
    $("#delete").hidden = !may || ["online", "validating"].includes(dataset.status);
    $("#resume").classList.toggle("d-none", dataset.status !== "uploading");
    if (dataset.status === "uploading") showSplits(dataset.test_mode);
    if (drawn) return;
    $("#splits").replaceChildren(...Object.entries(dataset.report || {}).map(([split, report]) => {
      const section = document.createElement("section");
      section.className = "mb-4";
      section.id = "split-" + split;
      const h = document.createElement("h2");
      h.className = "h5";
      h.textContent = `${split}: ${report.files} files, ${(report.bytes / 1048576).toFixed(2)} MiB`;
      section.appendChild(h);
      if (dataset.manifests && dataset.manifests[split]) {
        section.appendChild(ui.link(`Download the ${split} set (zip)`,
          `${page.prefix}api/datasets/${dataset.id}/download?split=${split}`));
      }
      section.appendChild(bars(report.counts));
      const samples = document.createElement("div");
      samples.className = "d-flex flex-wrap samples";
      if (dataset.manifests && dataset.manifests[split]) {
        for (const name of report.samples || []) samples.appendChild(sample(dataset, split, report.kind, name));
      }
      section.appendChild(samples);
      return section;
    }));
  }

  // Select *value* in *select*, adding it when the list lacks it (an item registered with another value).
  function choose(select, value) {
    if (![...select.options].some((o) => o.value === value)) select.add(new Option(value, value));
    select.value = value;
  }

  // The task list follows the purpose (manual 2.1.1: 二级用途对应一级用途).
  function purposeSelects(first, second) {
    const firstSelect = $("#purpose-first"), secondSelect = $("#purpose-second");
    const fill = () => secondSelect.replaceChildren(...(page.purpose_tasks[firstSelect.value] || [])
      .map((task) => new Option(task, task)));
    if (!firstSelect.dataset.bound) {
      firstSelect.dataset.bound = "1";
      firstSelect.addEventListener("change", fill);
    }
    choose(firstSelect, first);
    fill();
    if (second) choose(secondSelect, second);
  }

  function datasetPage() {
    const path = "datasets/" + page.item_id;
    let drawn = false;
    async function refresh() {
      try {
        const dataset = await ui.api("GET", path);
        showDataset(dataset, drawn);
        drawn = ["ready", "online", "offline", "failed"].includes(dataset.status);
        if (["validating"].includes(dataset.status)) setTimeout(refresh, 1000);
        if (dataset.manifests && Object.keys(dataset.manifests).length) {
          const users = await ui.api("GET", path + "/users");
          $("#users").textContent = users.count === 0 ? "no running workspace"
            : `${users.count} running workspace(s)${users.servers.length ? ": " + users.servers.join(", ") : ""}`;
        }
      } catch (e) { ui.flash(e.message); }
    }
    async function act(method, suffix, body) {
      try {
        await ui.api(method, path + suffix, body);
        if (method === "DELETE") window.location = page.prefix + "datasets";
        else refresh();
      } catch (e) { ui.flash(e.message); }
    }
    $("#online").addEventListener("click", () => act("POST", "/online"));
    $("#offline").addEventListener("click", () => act("POST", "/offline"));
    $("#delete").addEventListener("click", () => { if (confirm("Delete this dataset version?")) act("DELETE", ""); });
    $("#share").addEventListener("submit", (event) => {
      event.preventDefault();
      const edit = { visibility: $("#share-visibility").value, description: $("#description").value };
      if (!$("#annotation").closest(".purpose-field").classList.contains("d-none")) {
        edit.annotation = $("#annotation").value;
        edit.purpose = { first: $("#purpose-first").value, second: $("#purpose-second").value };
      }
      act("PATCH", "", edit);
    });
    $("#resume-upload").addEventListener("click", async () => {
      try {
        await sendArchives(await ui.api("GET", path));
        refresh();
      } catch (e) { ui.flash(e.message); }
    });
    refresh();
  }

  const datasetColumns = (d) => [d.name, d.version, d.format, `${d.purpose.first}/${d.purpose.second}`,
                                 Object.values(d.counts || {}).reduce((a, b) => a + b, 0), ui.owner(d.owner), d.visibility,
                                 ui.badge(d.status)];
  const views = { datasets: () => ui.listPage("datasets", datasetColumns), dataset_new: newPage, dataset: datasetPage };
  if (views[page.view]) views[page.view]();
})();
