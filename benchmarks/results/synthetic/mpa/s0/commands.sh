# run from the repository root
python -m fer_zoo fit --config experiments/synthetic/mpa.yaml --seed_everything 0 --run_dir runs/bench/synthetic/mpa/s0/fit
python -m fer_zoo test --config experiments/synthetic/mpa.yaml --ckpt_path runs/bench/synthetic/mpa/s0/fit/checkpoints/best-epoch00-acc0.1533.ckpt --run_dir runs/bench/synthetic/mpa/s0/test --trainer.devices 1 --trainer.strategy auto
