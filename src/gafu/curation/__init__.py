"""Curation of the sets (RECIPE D1): style cues of a picture, and the pictures that stand apart from the rest.

Read in this order:
- `cues`: the style cues of one picture (colour, lines, texture), from its pixels.
- `embed`: the optional image model (a CLIP vision encoder) as one more cue.
- `consistency`: the groups of pictures that stand apart, and why, in words and numbers.
- `table`: the target set's cue table, cached, with the tagger's style tags and the image model.
"""
