/* srlm plan's arithmetic (pipeline/plan.h): the Llama-2 parameter counts, every
 * memory term of one small case against numbers worked out by hand below, the
 * refusal and its suggestions, and that more tp / dp never costs memory. */
#include <string.h>

#include "io/checkpoint.h"
#include "io/config.h"
#include "pipeline/plan.h"
#include "test.h"

static void load_config(srlm_config *c) {
    CHECK_OK(srlm_config_defaults(c));
}

static srlm_plan_arch builtin(const char *name) {
    srlm_plan_arch a;
    memset(&a, 0, sizeof a);
    CHECK_OK(srlm_plan_arch_builtin(name, &a));
    return a;
}

/* Transformers' num_parameters() of meta-llama/Llama-2-*-hf (untied, norms in). */
static void test_llama2_counts(void) {
    srlm_plan_arch a7 = builtin("7b"), a13 = builtin("13b"), a70 = builtin("70b");
    CHECK(srlm_plan_param_count(&a7) == 6738415616LL);
    CHECK(srlm_plan_param_count(&a13) == 13015864320LL);
    CHECK(srlm_plan_param_count(&a70) == 68976648192LL);
    srlm_plan_arch bad;
    CHECK(srlm_plan_arch_builtin("65b", &bad) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "65b") != NULL);
}

/* The formula against a real checkpoint: the sum of its tensors' sizes. */
static void test_count_matches_checkpoint(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/llama/tiny-gqa", test_env("SRLM_FIXTURES", "tests/fixtures"));
    srlm_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    if (srlm_ckpt_open(&ck, dir) != SRLM_OK) {
        fprintf(stderr, "cannot open %s: %s\n", dir, srlm_last_error());
        test_failures++;
        return;
    }
    int64_t numel = 0;
    for (int i = 0; i < ck.n_files; i++)
        for (int j = 0; j < ck.files[i].n_tensors; j++) numel += srlm_st_numel(&ck.files[i].tensors[j]);
    srlm_plan_arch a;
    srlm_plan_arch_from_hf(&ck.config, &a);
    CHECK_MSG(srlm_plan_param_count(&a) == numel, "formula %lld, checkpoint %lld",
              (long long)srlm_plan_param_count(&a), (long long)numel);
    srlm_ckpt_close(&ck);
}

/* A tiny model on 1 node x 4 GPUs, tp 2, dp 2, worked out by hand.
 *   D 64, L 2, H 4, KV 2, hd 16, F 128, V 100, untied.
 *   layer: q 64x64 4096 + k,v 2 x 64x32 4096 + o 4096 + gate/up/down 3x64x128 24576 + norms 128 = 36992
 *   P = 2 x 100x64 12800 + 2 x 36992 + 64 = 86848
 *   Pm = 6400 (lm_head) + 2 x (36992 - 128) = 80128
 * At tp 2: V padded to 128 (64 x tp), 64 rows each: 2 x 64x64 = 8192; per layer 2 heads, 1 KV head,
 *   F 64: q 2048 + o 2048 + k,v 2 x 1024 + 3 x 64x64 12288 + norms 128 = 18560
 *   held = 8192 + 2 x 18560 + 64 = 45376; shard = ceil(45376 / 2) = 22688
 *   weights 2 x 45376 = 90752; gradients 4 x 45376 = 181504; optimizer 12 x 22688 = 272256
 * Activations, bytes per token per layer: 8D 512 + dropout masks 2D 128 + Q 2x2x16 64 + K,V 4x1x16 64
 *   + attention out 64 + gate, up, SwiGLU 6 x 64 384 + log-sum-exp 4 x 2 8 = 1224 (1096 without dropout)
 *   outside the layers 8D = 512; logits tokens x 128/2 x 4 B.
 *   SFT micro-batch 2 x 8 tokens = 16: logits 16 x 64 x 4 = 4096
 *     full      16 x (2 x 1224 + 512) + 4096 = 51456
 *     recompute 16 x (2 x 2D 256 + 1224 + 512) + 4096 = 35968
 *   DPO 1 pair = 2 x 8 = 16 tokens, dropout 0: full 16 x (2 x 1096 + 512) + 4096 = 47360
 * KV per token 2 x L 2 x 1 KV head x 16 x 2 B = 128: 1 MiB holds 8192 tokens.
 * Generation activations: prefill rows capped at 4096 (self-instruct 4 x 1536 and judge 5 x 1152
 *   pass it) x (3D 192 + 4 q 128 + 4 kv 64 + 2 F 128 = 512: q, k, v, att twice, packed and
 *   padded) + 12 logit rows (the largest batch)
 *   x 128/2, 2 B each.
 * Reserve at 4 GiB: 2 GiB + 4 GiB / 20. */
static srlm_plan_arch tiny(void) {
    srlm_plan_arch a = {64, 2, 4, 2, 16, 128, 100, 0};
    return a;
}

static void tiny_config(srlm_config *c) {
    load_config(c);
    c->parallel.tp = 2;
    c->backend.dtype = SRLM_BF16;
    c->train.sft.micro_batch_size = 2;
    c->train.sft.max_seq_len = 8;
    c->train.sft.dropout = 0.1;
    c->train.dpo.micro_batch_size = 1;
    c->train.dpo.max_seq_len = 8;
    c->train.dpo.dropout = 0;
    c->generate.kv_cache_mb = 1;
}

/* One node of 4 GPUs of 4 GiB: tiny_config at tp 2 x dp 2. */
static srlm_plan_opts tiny_opts(void) {
    srlm_plan_opts o;
    srlm_plan_opts_defaults(&o);
    o.nodes = 1;
    o.gpus_per_node = 4;
    o.gpu_mem_gib = 4;
    return o;
}

static void test_small_case_by_hand(void) {
    srlm_config c;
    tiny_config(&c);
    srlm_plan_arch a = tiny();
    srlm_plan_opts o = tiny_opts();
    srlm_plan p;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(p.world == 4 && p.tp == 2 && p.dp == 2 && !p.dp_spans_nodes);
    CHECK(p.params == 86848);
    CHECK(p.params_matmul == 80128);
    CHECK(p.vocab_padded == 128 && p.heads_local == 2 && p.kv_local == 1 && p.ffn_local == 64);
    CHECK(p.params_held == 45376);
    CHECK(p.params_shard == 22688);
    CHECK(p.mem_weights == 90752);
    CHECK(p.mem_grads == 181504);
    CHECK(p.mem_optimizer == 272256);
    CHECK(p.mem_unsharded16 == 16 * 86848);
    CHECK(p.sft.act_layer_token == 1224);
    CHECK(p.sft.act_logits == 4096);
    CHECK(p.sft.act_full == 51456);
    CHECK(p.sft.act_recompute == 35968);
    CHECK(p.sft.act == p.sft.act_full); /* recompute off by default */
    CHECK(p.dpo.seqs_per_micro == 2);
    CHECK(p.dpo.act_layer_token == 1096);
    CHECK(p.dpo.act_full == 47360);
    CHECK(p.kv_per_token == 128);
    CHECK(p.mem_kv == 1048576 && p.kv_tokens == 8192);
    CHECK(p.mem_reserve == 2147483648LL + 4294967296LL / 20);
    CHECK(p.mem_train == 90752 + 181504 + 272256 + 51456 + p.mem_reserve);
    CHECK(p.self_instruct.batch == 4 && p.candidates.batch == 12 && p.judge.batch == 5);
    CHECK(p.gen_act_tokens == 4096 && p.gen_logit_rows == 12);
    CHECK(p.mem_gen_acts == 2 * (4096 * 512 + 12 * 64));
    CHECK(p.mem_gen == 90752 + 1048576 + p.mem_decode_logits + p.mem_gen_acts + p.mem_reserve);
    CHECK(p.fits);
    CHECK_OK(srlm_plan_check_fit(&p));

    /* tp 4 > 2 KV heads: each rank keeps a copy of one KV head, 1 query head.
     * V padded to 256, 64 rows: 2 x 64x64 8192; layer: q 1024 + o 1024 + k,v 2 x 1024
     * + 3 x 64x32 6144 + norms 128 = 10368; held 8192 + 2 x 10368 + 64 = 28992 */
    c.parallel.tp = 4;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(p.kv_local == 1 && p.heads_local == 1 && p.vocab_padded == 256);
    CHECK(p.params_held == 28992);
    CHECK(p.dp == 1 && p.mem_optimizer == 12 * 28992);

    /* backend.dtype float32: 4 B weights, and no separate master (m, v: 8 B per shard element) */
    c.backend.dtype = SRLM_F32;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(p.mem_weights == 4 * 28992 && p.mem_grads == 4 * 28992 && p.mem_optimizer == 8 * 28992);
    c.backend.dtype = SRLM_BF16;

    /* timing is positive and adds up */
    CHECK(p.sft.t_step > 0 && p.dpo.t_step > 0 && p.t_iteration > 0);
    CHECK(fabs(p.t_iteration - (p.self_instruct.t_total + p.candidates.t_total + p.judge.t_total + p.t_ref_logp +
                                p.t_dpo)) < 1e-9 * p.t_iteration);
    srlm_config_free(&c);
}

/* train.X.micro_batch_tokens: tiny_config's SFT (2 examples of 8 tokens a
 * micro-batch) capped at 12 tokens takes one example a micro-batch; the
 * activations are sized for 12 tokens, not 16: logits 12 x 64 x 4 = 3072,
 * full 12 x (2 x 1224 + 512) + 3072 = 38592; twice the micro-batches. */
static void test_micro_batch_tokens(void) {
    srlm_config c;
    tiny_config(&c);
    srlm_plan_arch a = tiny();
    srlm_plan_opts o = tiny_opts();
    srlm_plan p;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    const int micro_before = p.sft.micro_steps;
    const double ref_before = p.t_ref_logp;
    CHECK(p.sft.examples_per_micro == 2 && p.sft.act_tokens == 16);
    c.train.sft.micro_batch_tokens = 12;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(p.sft.examples_per_micro == 1 && p.sft.seqs_per_micro == 1);
    CHECK(p.sft.act_tokens == 12);
    CHECK(p.sft.act_logits == 3072);
    CHECK(p.sft.act_full == 38592);
    CHECK(p.sft.micro_steps == 2 * micro_before);
    /* a cap above the worst case changes nothing */
    c.train.sft.micro_batch_tokens = 1000;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(p.sft.examples_per_micro == 2 && p.sft.act_tokens == 16 && p.sft.act_full == 51456);
    /* DPO: 8 pairs a micro-batch of 2 x 8 tokens each, capped at 48 tokens: 3 pairs */
    c.train.dpo.micro_batch_size = 8;
    c.train.dpo.batch_size = 16;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    const double ref8 = p.t_ref_logp, compute8 = p.dpo.t_compute;
    const int ref_pairs8 = p.ref_pairs_per_fwd;
    CHECK(p.dpo.micro_steps == 1 && p.dpo.micro_fill == 1); /* dp 2: 8 pairs a rank, one micro-batch */
    c.train.dpo.micro_batch_tokens = 48;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(p.dpo.examples_per_micro == 3 && p.dpo.seqs_per_micro == 6 && p.dpo.act_tokens == 48);
    /* 3 + 3 + 2 pairs: the same FLOPs as one micro-batch of 8 (packed, a short
     * micro-batch costs its own tokens only) */
    CHECK(p.dpo.micro_steps == 3 && fabs(p.dpo.micro_fill - 8.0 / 9.0) < 1e-12);
    CHECK_MSG(fabs(p.dpo.t_compute - compute8) < 1e-9 * compute8, "compute %g s with the cap, %g s without",
              p.dpo.t_compute, compute8);
    CHECK(p.dpo_iter.examples_per_micro == 3);
    /* the loop's reference pass: forwards of the pairs 48 tokens hold (3 of 2 x 8)
     * instead of 8 (8 x 2 x 8 = 128 tokens): the same FLOPs, more forwards, so
     * at tp 2 more all-reduce latency */
    CHECK_MSG(p.ref_pairs_per_fwd == 3 && ref_pairs8 == 8, "reference pass: %d pairs a forward (%d without the cap)",
              p.ref_pairs_per_fwd, ref_pairs8);
    CHECK_MSG(p.t_ref_logp > ref8 && ref_before > 0, "reference pass %g s with the cap, %g s without", p.t_ref_logp,
              ref8);
    srlm_config_free(&c);
}

/* Layouts the model or the topology refuses. */
static void test_bad_layouts(void) {
    srlm_config c;
    load_config(&c);
    srlm_plan_arch a = builtin("70b");
    srlm_plan_opts o;
    srlm_plan_opts_defaults(&o);
    srlm_plan p;
    c.parallel.tp = 3;
    CHECK(srlm_plan_compute(&c, &a, &o, &p) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "parallel.tp = 3") != NULL);
    c.parallel.tp = 16; /* more than a node's 8 GPUs */
    CHECK(srlm_plan_compute(&c, &a, &o, &p) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "one node") != NULL);
    c.parallel.tp = 8;
    c.parallel.dp = 3;
    CHECK(srlm_plan_compute(&c, &a, &o, &p) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "parallel.dp") != NULL);
    c.parallel.dp = 0;
    o.nodes = 0;
    CHECK(srlm_plan_compute(&c, &a, &o, &p) == SRLM_BAD_INPUT);
    srlm_config_free(&c);
}

static void config_70b(srlm_config *c) {
    load_config(c);
    c->parallel.tp = 8;
    c->backend.dtype = SRLM_BF16;
    c->train.sft.recompute = c->train.dpo.recompute = true;
    c->generate.kv_cache_mb = 32768;
}

static void test_refusal_and_fixes(void) {
    srlm_config c;
    config_70b(&c);
    srlm_plan_arch a = builtin("70b");
    srlm_plan_opts o;
    srlm_plan_opts_defaults(&o);
    srlm_plan p;
    srlm_plan_fixes f;

    /* 8 x 8 x 80 GiB fits; 1 node does not: 12 B x 8.6e9 / dp 1 of optimizer state */
    o.nodes = 8;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(p.fits);
    CHECK(p.params_held == 8623759360LL); /* 2 x 4032 x 8192 + 80 x 106,971,136 + 8192 */
    o.nodes = 1;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(!p.fits);
    CHECK(srlm_plan_check_fit(&p) == SRLM_BAD_INPUT);
    CHECK_MSG(strstr(srlm_last_error(), "optimizer state") && strstr(srlm_last_error(), "--nodes 5"), "%s",
              srlm_last_error());
    srlm_plan_find_fixes(&p, &f);
    CHECK(f.nodes == 5 && f.tp == 0 && f.recompute == 0);
    /* the suggestion is the fewest nodes: 5 fits, 4 does not */
    o.nodes = 5;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(p.fits);
    o.nodes = 4;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(!p.fits);

    /* recomputation off on 8 nodes: only turning it on fits (activations 33 GiB) */
    o.nodes = 8;
    c.train.sft.recompute = c.train.dpo.recompute = false;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(!p.fits);
    srlm_plan_find_fixes(&p, &f);
    CHECK(f.recompute == 1 && f.nodes == 0 && f.micro_batch == 0);
    CHECK(srlm_plan_check_fit(&p) == SRLM_BAD_INPUT);
    CHECK(strstr(srlm_last_error(), "activations of train.dpo") && strstr(srlm_last_error(), "recompute=true"));

    /* a micro-batch of 8 pairs with recomputation: at most 2 fits */
    c.train.sft.recompute = c.train.dpo.recompute = true;
    c.train.dpo.micro_batch_size = 8;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(!p.fits);
    srlm_plan_find_fixes(&p, &f);
    CHECK(f.micro_batch == 2);
    CHECK(srlm_plan_check_fit(&p) == SRLM_BAD_INPUT);
    CHECK_MSG(strstr(srlm_last_error(), "train.dpo.micro_batch_size at most 2 (2 examples") &&
                  !strstr(srlm_last_error(), "train.sft.micro_batch"),
              "%s", srlm_last_error());
    /* the same 8 pairs through a token cap: lowering micro_batch_size alone
     * would change nothing, so the cap is what the fix names */
    c.train.dpo.micro_batch_size = 64;
    c.train.dpo.micro_batch_tokens = 8 * 2 * c.train.dpo.max_seq_len;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(!p.fits && p.dpo.examples_per_micro == 8);
    srlm_plan_find_fixes(&p, &f);
    CHECK(f.micro_batch == 2);
    CHECK(srlm_plan_check_fit(&p) == SRLM_BAD_INPUT);
    char want[96];
    snprintf(want, sizeof want, "train.dpo.micro_batch_tokens at most %d", 2 * 2 * c.train.dpo.max_seq_len);
    CHECK_MSG(strstr(srlm_last_error(), want) && !strstr(srlm_last_error(), "micro_batch_size"), "%s",
              srlm_last_error());
    c.train.dpo.micro_batch_tokens = 2 * 2 * c.train.dpo.max_seq_len; /* as suggested: fits */
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(p.fits);
    c.train.dpo.micro_batch_size = 1;
    c.train.dpo.micro_batch_tokens = 0;

    /* a KV cache larger than what is left: the largest that fits, exactly */
    c.generate.kv_cache_mb = 70000;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(!p.fits);
    srlm_plan_find_fixes(&p, &f);
    CHECK(f.kv_cache_mb > 32768 && f.kv_cache_mb < 70000);
    c.generate.kv_cache_mb = f.kv_cache_mb;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(p.fits);
    c.generate.kv_cache_mb = f.kv_cache_mb + 1;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(!p.fits);
    CHECK(srlm_plan_check_fit(&p) == SRLM_BAD_INPUT && strstr(srlm_last_error(), "KV cache"));
    /* and one too small for a single sequence */
    c.generate.kv_cache_mb = 10;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(!p.fits && p.self_instruct.batch == 0);
    CHECK(srlm_plan_check_fit(&p) == SRLM_BAD_INPUT && strstr(srlm_last_error(), "holds not one"));
    srlm_config_free(&c);

    /* 7B at tp 1 on one node in float32: 4 B weights do not leave room for the
     * activations; bfloat16 (2 B weights, 12 B optimizer over dp 8) does */
    load_config(&c);
    c.backend.dtype = SRLM_F32;
    a = builtin("7b");
    o.nodes = 1;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(!p.fits && p.mem_weights == 4 * p.params_held);
    srlm_plan_find_fixes(&p, &f);
    CHECK(f.bf16 == 1);
    CHECK(srlm_plan_check_fit(&p) == SRLM_BAD_INPUT && strstr(srlm_last_error(), "backend.dtype=bfloat16"));
    c.backend.dtype = SRLM_BF16;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(p.fits);
    srlm_config_free(&c);

    /* 13B at tp 1: weights + gradients + activations do not fit; tp 2 does */
    load_config(&c);
    c.backend.dtype = SRLM_BF16;
    a = builtin("13b");
    o.nodes = 1;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    CHECK(!p.fits);
    srlm_plan_find_fixes(&p, &f);
    CHECK(f.tp == 2);
    CHECK(srlm_plan_check_fit(&p) == SRLM_BAD_INPUT && strstr(srlm_last_error(), "parallel.tp=2"));
    srlm_config_free(&c);

    /* nothing fits: 70B weights and gradients alone exceed 24 GiB at tp 8 */
    config_70b(&c);
    a = builtin("70b");
    o.gpu_mem_gib = 24;
    CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
    srlm_plan_find_fixes(&p, &f);
    CHECK(!f.nodes && !f.tp && !f.recompute && !f.micro_batch && !f.combo_nodes);
    CHECK(srlm_plan_check_fit(&p) == SRLM_BAD_INPUT && strstr(srlm_last_error(), "gradients"));
    srlm_config_free(&c);
}

/* More tp never holds more weight per rank; more dp never more optimizer state. */
static void test_monotonic(void) {
    srlm_config c;
    config_70b(&c);
    srlm_plan_arch a = builtin("70b");
    srlm_plan_opts o;
    srlm_plan_opts_defaults(&o);
    o.nodes = 8;
    srlm_plan p;
    int64_t last = -1;
    for (int tp = 1; tp <= 8; tp *= 2) {
        c.parallel.tp = tp;
        CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
        CHECK_MSG(last < 0 || p.mem_weights < last, "tp %d: weights %lld, at tp/2 %lld", tp,
                  (long long)p.mem_weights, (long long)last);
        CHECK(p.mem_weights == 2 * p.params_held && p.mem_grads == 4 * p.params_held);
        last = p.mem_weights;
    }
    c.parallel.tp = 8;
    last = -1;
    int64_t train_last = -1;
    for (int nodes = 1; nodes <= 16; nodes++) {
        o.nodes = nodes;
        CHECK_OK(srlm_plan_compute(&c, &a, &o, &p));
        CHECK(p.dp == nodes);
        CHECK_MSG(last < 0 || p.mem_optimizer < last, "dp %d: optimizer %lld, before %lld", p.dp,
                  (long long)p.mem_optimizer, (long long)last);
        CHECK(train_last < 0 || p.mem_train < train_last);
        last = p.mem_optimizer;
        train_last = p.mem_train;
    }
    srlm_config_free(&c);
}

int main(void) {
    test_llama2_counts();
    test_count_matches_checkpoint();
    test_small_case_by_hand();
    test_micro_batch_tokens();
    test_bad_layouts();
    test_refusal_and_fixes();
    test_monotonic();
    TEST_DONE();
}
