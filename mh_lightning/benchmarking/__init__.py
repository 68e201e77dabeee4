"""Speed measurements behind docs/benchmarks.md: the project's own training loop (`loop`), the HF
Trainer recipe (`hf_trainer`) and TRL's SFTTrainer (`trl_sft`) timed alike, the interleaved CPU
comparison (`rounds`) and generation speed (`generation`). scripts/ holds their command lines."""
