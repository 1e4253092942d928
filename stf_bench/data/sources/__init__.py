"""Where scenes come from: the embedded synthetic generator, folders of GeoTIFFs, Google Earth Engine."""
