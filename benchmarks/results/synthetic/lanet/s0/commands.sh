# run from the repository root
python -m fer_zoo fit --config experiments/synthetic/lanet.yaml --seed_everything 0 --run_dir runs/bench/synthetic/lanet/s0/fit
python -m fer_zoo test --config experiments/synthetic/lanet.yaml --ckpt_path runs/bench/synthetic/lanet/s0/fit/checkpoints/best-epoch05-acc0.4250.ckpt --run_dir runs/bench/synthetic/lanet/s0/test --trainer.devices 1 --trainer.strategy auto
