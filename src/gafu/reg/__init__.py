"""`gafu reg pick`: a regularization set chosen from a pool of pictures (RECIPE D2, D3)."""
