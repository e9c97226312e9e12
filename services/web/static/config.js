"use strict";
document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("config").textContent = JSON.stringify(await api("/api/config"), null, 2);
});
