# run from the repository root
python -m fer_zoo fit --config experiments/synthetic/e2n.yaml --checkpoint_every_n_steps 100 --seed_everything 0 --run_dir runs/bench-synth-v2/synthetic/e2n/s0/fit --test_each_epoch true
python -m fer_zoo test --config experiments/synthetic/e2n.yaml --checkpoint_every_n_steps 100 --ckpt_path runs/bench-synth-v2/synthetic/e2n/s0/fit/checkpoints/best-epoch05-acc0.4517.ckpt --run_dir runs/bench-synth-v2/synthetic/e2n/s0/test --trainer.devices 1 --trainer.strategy auto
