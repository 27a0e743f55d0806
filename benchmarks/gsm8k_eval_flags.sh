# The GSM8K evaluation protocol the result scripts share (gsm8k_calculator.sh, gsm8k_majority.sh, gsm8k_grpo.sh), so
# their runs pair problem by problem: zero-shot chat, chain of thought ending '#### N', greedy unless a script adds
# sampling, 256 new tokens, bf16 decoding, loop stop. Sourced: sets the array GSM8K_EVAL.
# shellcheck disable=SC2034
GSM8K_EVAL=(--bench gsm8k --set format.reasoning=cot --set format.answer_marker=hash --set eval.max_new_tokens=256
            --set eval.batch_size=64 --set eval.precision=bf16 --set eval.stop_on_loop=true)
