# run from the repository root
python -m fer_zoo fit --config experiments/synthetic/clip-linear.yaml --checkpoint_every_n_steps 100 --seed_everything 1 --run_dir runs/bench-synth-v2/synthetic/clip-linear/s1/fit --test_each_epoch true
python -m fer_zoo test --config experiments/synthetic/clip-linear.yaml --checkpoint_every_n_steps 100 --ckpt_path runs/bench-synth-v2/synthetic/clip-linear/s1/fit/checkpoints/best-epoch03-acc0.1233.ckpt --run_dir runs/bench-synth-v2/synthetic/clip-linear/s1/test --trainer.devices 1 --trainer.strategy auto
