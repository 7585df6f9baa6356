"""End-to-end flows over the pipeline's steps: the nightly run and the one-command demo."""
