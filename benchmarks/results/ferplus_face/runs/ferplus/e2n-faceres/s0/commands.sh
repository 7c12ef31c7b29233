# run from the repository root
python -m fer_zoo fit --config experiments/ferplus/e2n-faceres.yaml --data.root ../shared/data/ferplus --seed_everything 0 --run_dir runs/bench-face/ferplus/e2n-faceres/s0/fit
python -m fer_zoo test --config experiments/ferplus/e2n-faceres.yaml --data.root ../shared/data/ferplus --ckpt_path runs/bench-face/ferplus/e2n-faceres/s0/fit/checkpoints/best-epoch02-acc0.6527.ckpt --run_dir runs/bench-face/ferplus/e2n-faceres/s0/test --trainer.devices 1 --trainer.strategy auto
