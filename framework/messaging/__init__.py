"""Pattern metadata, the compiled router, the pipeline, codecs and contexts."""
