# run from the repository root
python -m fer_zoo pretrain-landmarks --data synthetic --epochs 5 --out runs/bench-synth-v2/synthetic/landmark_net --image_size 64 --num_workers 1 --data_options num_train=3000 num_val=600 num_test=1000 synth_size=64
