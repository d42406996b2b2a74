// The queue's keyboard: j / k move across calls, Enter or o opens one, x selects a verified call for
// bulk approval and B approves the selection. The page works without this file (links and a form).
"use strict";

(function () {
  const rows = Array.from(document.querySelectorAll("tr.qrow"));
  const bulkForm = document.getElementById("bulk-form");
  const bulkButton = document.getElementById("bulk-approve");
  const selectAll = document.getElementById("select-all");
  let current = -1;

  function select(index) {
    if (!rows.length) return;
    if (current >= 0) rows[current].classList.remove("selected");
    current = Math.min(rows.length - 1, Math.max(0, index));
    rows[current].classList.add("selected");
    rows[current].scrollIntoView({ block: "nearest" });
  }

  function picks() { return Array.from(document.querySelectorAll("input.pick")); }

  function refreshBulk() {
    if (!bulkButton) return;
    const chosen = picks().filter((box) => box.checked).length;
    bulkButton.disabled = chosen === 0;
    bulkButton.textContent = chosen ? "Approve " + chosen + " verified call" + (chosen === 1 ? "" : "s") : "Approve selected verified calls";
  }

  for (const box of picks()) box.addEventListener("change", refreshBulk);
  if (selectAll) {
    selectAll.addEventListener("change", () => {
      for (const box of picks()) box.checked = selectAll.checked;
      refreshBulk();
    });
  }
  rows.forEach((row, index) => row.addEventListener("click", (event) => {
    if (event.target.closest("a, input, button")) return;
    select(index);
  }));

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input[type=text], input:not([type]), input[type=date], textarea, select")) return;
    const actions = {
      j: () => select(current + 1),
      k: () => select(current - 1),
      Enter: () => { if (current >= 0) location.href = rows[current].dataset.href; },
      o: () => { if (current >= 0) location.href = rows[current].dataset.href; },
      x: () => {
        const box = current >= 0 ? rows[current].querySelector("input.pick") : null;
        if (box) { box.checked = !box.checked; refreshBulk(); }
      },
      B: () => { if (bulkForm && bulkButton && !bulkButton.disabled) bulkForm.requestSubmit(bulkButton); },
    };
    if (event.key === "Enter" && event.target.closest("a, button")) return;
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });

  if (rows.length) select(0);
})();
