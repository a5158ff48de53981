"""The central overview at `/`: what needs a person now, per organisation.

`reading` gathers it in a fixed number of queries whatever the data (each section reads
its counts in one query and its first few rows in another, every organisation at once);
`views` serves it as a page and as the fragment its script swaps in every 30 seconds.
"""
