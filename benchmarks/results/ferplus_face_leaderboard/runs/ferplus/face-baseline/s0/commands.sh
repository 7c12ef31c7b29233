# run from the repository root
python -m fer_zoo fit --config experiments/ferplus/_base/ferplus-face.yaml --data.root ../shared/data/ferplus --seed_everything 0 --run_dir runs/leaderboard/ferplus/face-baseline/s0/fit --name face-baseline
python -m fer_zoo test --config experiments/ferplus/_base/ferplus-face.yaml --data.root ../shared/data/ferplus --ckpt_path runs/leaderboard/ferplus/face-baseline/s0/fit/checkpoints/best-epoch08-acc0.8415.ckpt --run_dir runs/leaderboard/ferplus/face-baseline/s0/test --name face-baseline --trainer.devices 1 --trainer.strategy auto
