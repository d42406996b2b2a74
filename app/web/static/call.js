// The call page's behaviour: select an item to highlight its evidence, keyboard shortcuts, and a
// transcript selection turned into a new item. The page works without this file (plain forms);
// the evidence marks are rendered by the server, so here we only toggle classes.
"use strict";

(function () {
  const transcript = document.getElementById("transcript");
  const items = Array.from(document.querySelectorAll("article.item"));
  const help = document.getElementById("help-dialog");
  const addForm = document.getElementById("add-form");
  const approveNext = document.getElementById("approve-next-form");
  const noteText = document.getElementById("note-text");
  let current = null;

  function select(item, scroll) {
    if (current) current.classList.remove("selected");
    for (const el of transcript.querySelectorAll(".ev.hl, .utt.hl")) el.classList.remove("hl");
    current = item;
    if (!item) return;
    item.classList.add("selected");
    // data-c is a space-separated list of claim ids: the ~= selector matches one of them.
    const marks = transcript.querySelectorAll('.ev[data-c~="' + item.dataset.claim + '"]');
    for (const mark of marks) {
      mark.classList.add("hl");
      mark.closest(".utt").classList.add("hl");
    }
    if (scroll) item.scrollIntoView({ block: "nearest" });
    if (marks.length) marks[0].scrollIntoView({ block: "center" });
  }

  function step(delta) {
    if (!items.length) return;
    const at = current ? items.indexOf(current) : -1;
    const next = items[Math.min(items.length - 1, Math.max(0, at + delta))];
    select(next, true);
    next.focus({ preventScroll: true });
  }

  // The next unverified item still pending a decision, wrapping around: every flagged item is one key away.
  // An edit its evidence does not support is one too: it stays undecided until approved as written.
  function nextUnverified() {
    const flagged = items.filter((item) => item.classList.contains("ungrounded")
      && (item.classList.contains("review-pending") || item.classList.contains("review-edited")));
    if (!flagged.length) return false;
    const at = current ? items.indexOf(current) : -1;
    const next = flagged.find((item) => items.indexOf(item) > at) || flagged[0];
    select(next, true);
    next.focus({ preventScroll: true });
    return true;
  }

  for (const item of items) {
    item.addEventListener("click", (event) => {
      if (event.target.closest("form, details, a")) return;
      select(item, false);
    });
    item.addEventListener("focus", () => { if (current !== item) select(item, false); });
  }

  // Evidence links scroll the transcript and highlight instead of jumping the whole page.
  for (const link of document.querySelectorAll("a.jump")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      select(link.closest("article.item"), false);
    });
  }

  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  // ----------------------------------------------------------------- new item from a selection

  // One {utterance, quote} piece per utterance the selection touches, text only (never the
  // speaker or time labels), so the server can verify each quote against its utterance.
  function selectionPieces() {
    const selection = window.getSelection();
    if (!selection || selection.isCollapsed || !selection.rangeCount) return [];
    const range = selection.getRangeAt(0);
    if (!transcript.contains(range.commonAncestorContainer)) return [];
    const pieces = [];
    for (const text of transcript.querySelectorAll(".utext")) {
      if (!range.intersectsNode(text)) continue;
      const part = document.createRange();
      part.selectNodeContents(text);
      if (range.compareBoundaryPoints(Range.START_TO_START, part) > 0) part.setStart(range.startContainer, range.startOffset);
      if (range.compareBoundaryPoints(Range.END_TO_END, part) < 0) part.setEnd(range.endContainer, range.endOffset);
      const quote = part.toString().trim();
      if (quote) pieces.push({ utterance: Number(text.closest(".utt").dataset.u), quote: quote });
    }
    return pieces;
  }

  function takeSelection() {
    if (!addForm) return false;
    const pieces = selectionPieces();
    if (!pieces.length) return false;
    document.getElementById("add-selection").value = JSON.stringify(pieces);
    const preview = document.getElementById("selection-preview");
    preview.textContent = pieces.map((p) => "[" + p.utterance + "] " + p.quote).join(" … ");
    preview.hidden = false;
    document.getElementById("add-submit").disabled = false;
    const text = document.getElementById("add-text");
    if (!text.value) text.value = pieces.map((p) => p.quote).join(" ");
    return true;
  }

  if (addForm) {
    transcript.addEventListener("mouseup", () => { takeSelection(); });
    transcript.addEventListener("keyup", () => { takeSelection(); });
    document.getElementById("add-kind").addEventListener("change", (event) => {
      const isAction = event.target.value === "action_item";
      for (const id of ["add-owner", "add-due"]) document.getElementById(id).closest("label").hidden = !isAction;
    });
  }

  // ------------------------------------------------------------------------------- shortcuts

  function press(role) {
    if (!current) return;
    const control = current.querySelector('[data-role="' + role + '"]');
    if (!control) return;
    if (role === "edit") {
      const details = control.closest("details");
      details.open = true;
      details.querySelector("textarea").focus();
    } else {
      control.click();
    }
  }

  document.addEventListener("keydown", (event) => {
    // A dialog (the help) covers the page: a key must not act on the item behind it. Escape is left to the
    // browser, which closes the dialog; "?" closes the help it opened.
    if (document.querySelector("dialog[open]")) {
      if (event.key === "?" && help.open && !event.ctrlKey && !event.metaKey && !event.altKey) {
        event.preventDefault();
        help.close();
      }
      return;
    }
    const typing = event.target.closest("input, textarea, select, [contenteditable]");
    if (typing && typing === noteText && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      noteText.form.requestSubmit();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape") {
      if (typing) {
        const details = typing.closest("details");
        if (details) details.open = false;
        typing.blur();
        if (current) current.focus({ preventScroll: true });
      }
      return;
    }
    if (typing) return;
    const actions = {
      // With an unverified item still to decide there is no "approve and next": go to that item instead of
      // doing nothing, which at speed looked like a dead key.
      y: () => { if (approveNext) approveNext.requestSubmit(); else nextUnverified(); },
      u: () => nextUnverified(),
      w: () => { if (noteText) { noteText.focus(); noteText.setSelectionRange(noteText.value.length, noteText.value.length); } },
      // Back to the queue the call was opened from (its filters ride on the back link).
      g: () => { location.href = document.getElementById("back-to-queue").href; },
      "]": () => { const next = document.getElementById("next-call"); if (next) location.href = next.href; },
      j: () => step(1),
      k: () => step(-1),
      a: () => press("approve"),
      r: () => press("reject"),
      e: () => press("edit"),
      n: () => { if (takeSelection()) document.getElementById("add-text").focus(); },
      "?": () => help.showModal(),
    };
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });

  document.getElementById("help-button").addEventListener("click", () => help.showModal());

  // After a decision the server redirects to #claim-N: keep the reviewer where they were.
  const target = location.hash.startsWith("#claim-") ? document.getElementById(location.hash.slice(1)) : null;
  if (target) {
    select(target, true);
    target.focus({ preventScroll: true });
  }
})();
