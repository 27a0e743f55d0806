"""Answer verifier: labelled solutions, a LoRA verifier (True/False LM head or classification head), its metrics,
and answer selection with it (majority vote, best-of-N, verifier-weighted vote, pass@N).

    mathtune verifier data  RECIPE        mathtune verifier train RECIPE        mathtune verifier eval RUN --data D
    mathtune eval --model M --bench B --samples 8 --temperature 0.8 --verifier RUN
"""
