# run from the repository root
python -m fer_zoo fit --config experiments/synthetic/clip-zeroshot.yaml --seed_everything 0 --run_dir runs/bench/synthetic/clip-zeroshot/s0/fit
python -m fer_zoo test --config experiments/synthetic/clip-zeroshot.yaml --ckpt_path runs/bench/synthetic/clip-zeroshot/s0/fit/checkpoints/best-epoch00-acc0.1550.ckpt --run_dir runs/bench/synthetic/clip-zeroshot/s0/test --trainer.devices 1 --trainer.strategy auto
