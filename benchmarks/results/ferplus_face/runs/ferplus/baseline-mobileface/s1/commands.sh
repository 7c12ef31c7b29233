# run from the repository root
python -m fer_zoo fit --config experiments/ferplus/baseline-mobileface.yaml --data.root ../shared/data/ferplus --seed_everything 1 --run_dir runs/bench-face/ferplus/baseline-mobileface/s1/fit
python -m fer_zoo test --config experiments/ferplus/baseline-mobileface.yaml --data.root ../shared/data/ferplus --ckpt_path runs/bench-face/ferplus/baseline-mobileface/s1/fit/checkpoints/best-epoch02-acc0.6043.ckpt --run_dir runs/bench-face/ferplus/baseline-mobileface/s1/test --trainer.devices 1 --trainer.strategy auto
