"""Fine-tuning service: a persistent job queue, trainers (LoRA for VQA/QA, Keras for style),
an evaluation gate that decides canary or not, and runners (embedded worker or Kubernetes Jobs)."""
