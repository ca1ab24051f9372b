// The new project's code page: the Projects page sends the name, env and dataset; this page brings the code in,
// then starts the project through the hub's spawn URL (which takes the same options as the Projects page).
(function () {
  "use strict";
  const { api, flash, sendWithProgress } = window.LibraryUI;
  const page = window.LIBRARY;
  const $ = (selector) => document.querySelector(selector);
  const form = $("#project-code");
  const query = new URLSearchParams(window.location.search);
  const project = { name: query.get("name") || "", env: query.get("env") || "", dataset: query.get("dataset") || "" };
  $("#project-name").textContent = project.name;
  $("#project-env").textContent = project.env || "(default)";
  $("#project-dataset").textContent = project.dataset || "none";
  if (query.get("source")) $("#source").value = query.get("source");
  const forEnv = [...$("#sample").options].find((option) => option.dataset.env === project.env);
  if (forEnv) $("#sample").value = forEnv.value;

  function show() {
    for (const set of document.querySelectorAll(".source-fields")) {
      const active = set.dataset.source === $("#source").value;
      set.hidden = !active;
      set.disabled = !active;  // hidden fields are neither checked nor sent
    }
  }
  $("#source").addEventListener("change", show);
  show();

  function start() {
    const options = new URLSearchParams({ env: project.env, dataset: project.dataset });
    window.location = form.dataset.hub + "spawn/" + encodeURIComponent(page.user) + "/" +
      encodeURIComponent(project.name) + "?" + options;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    flash("");
    if (!form.reportValidity()) return;
    const source = $("#source").value;
    const state = $("#code-state");
    $("#create").disabled = true;
    state.textContent = source === "git" ? "cloning..." : source === "archive" ? "uploading..." : "generating...";
    try {
      if (source === "archive") {
        await sendWithProgress("projects/" + encodeURIComponent(project.name) + "/code/archive",
                               $("#archive").files[0], { "Content-Type": "application/octet-stream" });
      } else {
        const body = { source };
        if (source === "sample") body.sample = $("#sample").value;
        if (source === "generator") Object.assign(body, { prefix: $("#prefix").value, interface: $("#interface").value,
                                                          framework: $("#framework").value });
        if (source === "git") {
          body.url = $("#url").value.trim();
          if ($("#branch").value.trim()) body.branch = $("#branch").value.trim();
        }
        await api("POST", "projects/" + encodeURIComponent(project.name) + "/code", body);
      }
      state.textContent = "code is in; starting the project...";
      start();
    } catch (e) {
      flash(e.message);
      state.textContent = "";
      $("#create").disabled = false;
    }
  });
})();
