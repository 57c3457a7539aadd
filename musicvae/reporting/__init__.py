"""Report: tables, figures and report.html from a sweep's tables or from MLflow.

In: trial and method tables, embeddings. Out: report.md, methods.md, report.html, PNG figures.

* :mod:`~musicvae.reporting.report`: ``musicvae report``; :mod:`~musicvae.reporting.report_html`: the interactive page;
* :mod:`~musicvae.reporting.charts`: its plotly charts; :mod:`~musicvae.reporting.figures`, :mod:`~musicvae.reporting.study_figures`,
  :mod:`~musicvae.reporting.summary`: the PNG figures;
* :mod:`~musicvae.reporting.projection`, :mod:`~musicvae.reporting.trial_projection`: UMAP and t-SNE pictures.
"""
