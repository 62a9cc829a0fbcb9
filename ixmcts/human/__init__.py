"""Human evaluation (the paper's Section 5.2–5.3): a blind A/B chat app with ratings and
pair annotation (``app``, ``store``, ``study``), and the statistics of Table 5, Figure 3 and
Fleiss' kappa from its exported files (``report``)."""
