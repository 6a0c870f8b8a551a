"""Fine-tuning service: a persistent job queue that runs each family's trainer (from its registration),
an evaluation gate that decides canary or not, and runners (embedded worker or Kubernetes Jobs)."""
