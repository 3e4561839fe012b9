// MathJax settings: formulas of the Markdown pages (pymdownx.arithmatex, generic
// mode) and the $$ ... $$ of the notebooks' Markdown cells (mkdocs-jupyter).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  // Only the formulas of arithmatex spans and of the notebooks' Markdown cells
  // are typeset. An element with any class is skipped, with everything inside
  // it, unless the class is listed in processHtmlClass; elements without a
  // class follow their parent, so the paragraphs inside a Markdown cell are
  // typeset while code cells and their outputs are not.
  options: {
    ignoreHtmlClass: ".+",
    processHtmlClass: "arithmatex|jp-MarkdownOutput",
  },
  // The page is typeset below, once per page that the theme shows, not also by
  // MathJax's own start-up: a second pass after clearCache() would drop the
  // glyph styles of the first and leave its formulas blank.
  startup: {
    typeset: false,
  },
};

document$.subscribe(() => {
  if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) {
    return;
  }
  MathJax.startup.promise = MathJax.startup.promise.then(() => {
    MathJax.startup.output.clearCache();
    MathJax.typesetClear();
    MathJax.texReset();
    return MathJax.typesetPromise();
  });
});
