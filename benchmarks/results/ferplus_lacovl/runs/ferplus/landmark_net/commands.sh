# run from the repository root
python -m fer_zoo pretrain-landmarks --data ferplus --epochs 2 --out runs/bench-lacovl/ferplus/landmark_net --image_size 64 --data.root ../shared/data/ferplus --num_workers 1 --data_options label_mode=majority
