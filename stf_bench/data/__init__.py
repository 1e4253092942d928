"""Data: sources yield Scenes, preprocessing regrids and fills, the store writes them, samples pair and split."""
