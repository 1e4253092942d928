"""One module per surveyed architecture; shared layers in blocks/."""
