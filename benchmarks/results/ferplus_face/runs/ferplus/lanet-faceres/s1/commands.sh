# run from the repository root
python -m fer_zoo fit --config experiments/ferplus/lanet-faceres.yaml --data.root ../shared/data/ferplus --checkpoint_every_n_steps 100 --seed_everything 1 --run_dir runs/bench-face/ferplus/lanet-faceres/s1/fit
python -m fer_zoo test --config experiments/ferplus/lanet-faceres.yaml --data.root ../shared/data/ferplus --checkpoint_every_n_steps 100 --ckpt_path runs/bench-face/ferplus/lanet-faceres/s1/fit/checkpoints/best-epoch02-acc0.7690.ckpt --run_dir runs/bench-face/ferplus/lanet-faceres/s1/test --trainer.devices 1 --trainer.strategy auto
