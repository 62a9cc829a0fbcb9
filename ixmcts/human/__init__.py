"""Human evaluation: the statistics of the paper's Table 5, Figure 3 and Section 5.2 from
rating and annotation files. (The blind A/B chat app that collects them is issue #7.)"""
