# run from the repository root
python -m fer_zoo fit --config experiments/synthetic/clip-linear.yaml --seed_everything 0 --run_dir runs/bench/synthetic/clip-linear/s0/fit
python -m fer_zoo test --config experiments/synthetic/clip-linear.yaml --ckpt_path runs/bench/synthetic/clip-linear/s0/fit/checkpoints/best-epoch04-acc0.1400.ckpt --run_dir runs/bench/synthetic/clip-linear/s0/test --trainer.devices 1 --trainer.strategy auto
