/* A loaded model: its source, AST, symbols (data, params, consts, named
 * expressions, functions), its compiled graphs, and the latest run's state
 * (bpv_run, reset by each run). The compiler turns the symbols into a
 * bpv_graph; the runner (train.c) executes the statements. */
#ifndef BPV_MODEL_H
#define BPV_MODEL_H

#include "ast.h"
#include "graph.h"

/* Limits; a model beyond them gets a clear error, not an OOM. Defaults
 * (64 Mi elements per tensor, 1e6 nodes per graph) that
 * environment variables override: see bpv_limits in base.h. */
#define BPV_MAX_TENSOR_ELEMS (bpv_limits_get()->tensor_elems)
#define BPV_MAX_NODES (bpv_limits_get()->nodes)

typedef struct bpv_data {
    const char *name;
    const bpv_stmt *stmt;
    int64_t nsamples;
    bpv_shape sample;  /* shape of one sample */
    double *values;    /* nsamples * numel(sample), rounded to the dtype */
    float *values32;   /* the same as float32 when the model stores float32, or NULL (data.c) */
} bpv_data;

typedef struct bpv_param {
    const char *name;
    const bpv_stmt *stmt;
    bpv_shape shape;
    int64_t numel;
    /* the initial value, as loaded (doubles rounded to the dtype, init.c);
     * every run starts from it */
    const double *init;
    /* run state (bpv_run): val is reset from init and grad to -0.0 when a
     * run starts; they stay where they are because PARAM nodes point at
     * them */
    /* current value, in the model's storage (bpv_model_params_f32) */
    union { double *val; float *val32; };
    /* .grad: persists across steps (zero_grad=false) */
    union { double *grad; float *grad32; };
    bool has_lr;
    double lr;         /* per-parameter lr override */
} bpv_param;

/* A param's optimizer state (optim.c), in the model's storage: reset when
 * a train statement starts, as a new torch.optim object would be. */
typedef struct bpv_optim_state {
    /* adam moments, or m = sgd momentum buffer */
    union { double *m; float *m32; };
    union { double *v; float *v32; };
    bool has_momentum; /* torch creates the momentum buffer on first step */
    long adam_t;
} bpv_optim_state;

/* Everything a run changes (train.c), besides the params' val and grad:
 * reset when a run starts, so that a model runs again from its initial
 * params with the same results. Buffers are allocated at load (within the
 * model's memory limit) and reused by every run. */
typedef struct bpv_run {
    long step;        /* steps taken so far */
    long epoch;       /* epochs completed so far (the next epoch's number) */
    int cur_stmt;     /* statement being run (snapshots list the params before it) */
    /* inspection (inspect.c): the first step with a NaN or infinity (0:
     * none yet); per param, whether it was in a training graph and whether
     * some step gave it a nonzero gradient (marked on gradcheck runs) */
    long nf_step;
    bool *grad_used, *grad_seen;
    bpv_optim_state *optim; /* per param */
    /* Kept snapshots in step order; each owns its memory (malloc'd), freed
     * when the next run starts or with the model. */
    bpv_snapshot **snaps;
    size_t nsnaps, capsnaps;
    bpv_snapshot *snap_spare; /* one released snapshot, refilled by the next take */
} bpv_run;

typedef struct bpv_const {
    const char *name;
    const bpv_stmt *stmt;
    bpv_shape shape;
    double *values;
} bpv_const;

/* One `train` statement, checked. */
typedef struct bpv_train {
    const bpv_stmt *stmt;
    long epochs;
    double lr;
    int64_t batch;       /* 1 default; 0 means all */
    bool adam;
    double momentum, beta1, beta2, eps;
    bool zero_grad;
    bool stop_on_nonfinite; /* stop at the first NaN or infinity (additive) */
    bool shuffle;
    uint64_t seed;
    const char *loss;    /* objective node name; "loss" by default */
    size_t loss_off, loss_len;
    /* filled by bpv_model_prepare (additive, model.c) */
    int stmt_index;      /* index of the train statement */
    bpv_graph *full;     /* graph for a full step */
    bpv_graph *part;     /* graph for the last, smaller batch, or NULL */
    /* train.c: their scalar plans (scalar.h), built at the first run and
     * taken by every run; NULL for a graph the plans do not take */
    struct bpv_scalar_plan *plan_full, *plan_part;
    bool planned;
    int64_t nsamples;    /* samples per epoch (1 when the graph uses no data) */
    int64_t bsize;       /* samples per full step (1 for batch=1) */
    long steps_per_epoch;
} bpv_train;

/* A declared name (additive, compile.c): one per name, never redefined, so
 * "as the symbols stand after statement k" means "defined before k". */
typedef enum bpv_sym_kind {
    BPV_SYM_DATA,
    BPV_SYM_PARAM,
    BPV_SYM_CONST,
    BPV_SYM_LET,
    BPV_SYM_FN,
    BPV_SYM_FAMILY /* h in h[0], h[1]...: each member is a LET of its own ("h[3]") */
} bpv_sym_kind;

typedef struct bpv_symbol {
    const char *name;
    bpv_sym_kind kind;
    int ref;  /* index into data / params / consts; -1 for LET and FN */
    int stmt; /* defining statement */
} bpv_symbol;

struct bpv_model {
    bpv_arena *arena;
    bpv_source src;
    bpv_program prog;
    bpv_dtype dtype;
    bool f32store;    /* graphs and params store float32 (f32 models) */

    bpv_data *data;   int ndata;
    bpv_param *params; int nparams;
    bpv_const *consts; int nconsts;

    /* symbols (compile.c): open-addressing table over syms */
    bpv_symbol *syms; int nsyms;
    int *symtab; int symcap;
    bpv_train *trains; int ntrains;
    bpv_graph **predicts; /* per statement: the compiled predict graph or NULL */
    /* per statement: the op of a fn with `grad` (fnprog.c), or NULL; NULL
     * when the model has none */
    bpv_custom **customs;

    long total_steps; /* known after loading */
    bpv_run run;      /* the latest run's state */
    /* a trace read from a file (trace.c): no program; run.snaps holds its
     * steps, total_steps is its last step's number, and nothing runs it */
    bool trace;
};

/* Whether the params (and every graph of the model) store float32: the
 * model's dtype is f32. */
static inline bool bpv_model_params_f32(const struct bpv_model *m) { return m->f32store; }

/* Shared by the declaration checkers (model.c, data.c, init.c): a located
 * model error (returns false, so checks read `return bpv_model_fail(...)`),
 * "out of memory" (returns false), and whether `bytes` more fit within
 * the memory budget (bpv_memory_budget), which every arena allocation a
 * model's size decides asks first; bpv_model_too_big is the located error
 * when they do not ("WHAT needs N GiB, more than the memory budget..."). */
bool bpv_model_fail(const bpv_model *m, bpv_error **err, size_t off, size_t len,
                    const char *fmt, ...) BPV_PRINTF(5, 6);
bool bpv_model_oom(bpv_error **err);
bool bpv_model_fits(const bpv_model *m, size_t bytes);
bool bpv_model_too_big(const bpv_model *m, bpv_error **err, size_t off, size_t len,
                       const char *what, size_t bytes);
/* True when e is a number that is a whole number in [lo, hi] (stored in *v). */
bool bpv_ast_whole(const bpv_ast *e, double lo, double hi, double *v);

/* Sets a param to where every run starts: its initial value (init) in the
 * model's storage, and .grad as torch's None (-0.0, see model.c). */
void bpv_param_restart(const bpv_model *m, bpv_param *p);

/* Walks the statements once without training: checks declarations, shapes,
 * the objective and train keys, and counts total_steps. Called by
 * bpv_model_load so that a bad model fails before anything runs. */
bool bpv_model_prepare(bpv_model *m, bpv_error **err);

/* Compiles the graph that computes node `target` (a named node) for a
 * batch of `batch` samples (0: one sample, no batch dimension), as the
 * model's symbols stand after statement `upto`. Data shapes come from the
 * data declarations, or from `bind` (predict bindings) when given. */
typedef struct bpv_binding {
    const char *name;
    bpv_shape shape;
    const double *values;
} bpv_binding;
bpv_graph *bpv_compile(bpv_model *m, int upto, const char *target, size_t target_off,
                       size_t target_len, int64_t batch, const bpv_binding *bind,
                       int nbind, bpv_error **err);

/* bpv_compile with the two modes spelled out (additive): `predict` takes
 * every data value from `bind` (copied into the graph); `objective` makes
 * `target` the node whose gradient is computed (else no gradients). */
bpv_graph *bpv_compile_ex(bpv_model *m, int upto, const char *target, size_t target_off,
                          size_t target_len, int64_t batch, bool predict,
                          const bpv_binding *bind, int nbind, bool objective, bpv_error **err);

/* Marks in need[] (one flag per statement) every statement the named node
 * depends on, itself included: named nodes, fns, data, params, consts.
 * Returns false when the name is unknown. */
bool bpv_mark_needed(const bpv_model *m, const char *target, bool *need);

/* The statement at or after `stmt` that defines `name`, or -1: for "used
 * before it is defined" messages. */
int bpv_later_def(const bpv_model *m, const char *name, int stmt);

/* Symbol table (compile.c). bpv_sym_find returns the symbol index or -1;
 * bpv_sym_add returns false when out of memory. */
int bpv_sym_find(const bpv_model *m, const char *name);
bool bpv_sym_add(bpv_model *m, const char *name, bpv_sym_kind kind, int ref, int stmt);
/* The symbol of family member name[k], or -1. */
int bpv_member_find(const bpv_model *m, const char *family, int64_t k);
/* SHAPE as written in zeros(SHAPE) and the other initialisers: [3, 2], []
 * (a scalar) or a single number; checked against BPV_MAX_TENSOR_ELEMS. */
bool bpv_shape_eval(const bpv_model *m, const bpv_ast *e, bpv_shape *s, bpv_error **err);
/* The op a call of built-in op `op` makes: its row's with_attrs variant
 * when the call gives attributes (sum(a, dim=1)). */
bpv_op bpv_call_op(const bpv_ast *e, bpv_op op);
/* The op a binary operator token writes (TK_STARSTAR is TK_CARET's
 * spelling), or BPV_OP_NONE. */
bpv_op bpv_op_of_token(bpv_token_kind k);
/* True for built-in function names (sigmoid, sum, csv, zeros...), which
 * cannot be used as names. */
bool bpv_is_builtin(const char *name);
/* Checks the names and calls of an expression at its definition (statement
 * `stmt`): every name defined before it or one of `params`, every call a
 * built-in or an earlier fn with the right argument count; `self` (the fn
 * being defined, or NULL) may not call itself. */
bool bpv_expr_validate(bpv_model *m, const bpv_ast *e, int stmt, const char *const *params,
                    int nparams, const char *self, bpv_error **err);
/* The tensor inputs (*nin, the leading arguments) and the attributes (attr,
 * in the op's row order) of a call of op `op` in the language, checked. */
bool bpv_call_args(const bpv_model *m, const bpv_ast *e, bpv_op op, int *nin, double *attr,
                   bpv_error **err);
/* Reads a constant number/list (numbers, unary minus, nested lists) into a
 * shape and arena-allocated values rounded to the model's dtype. `what`
 * names the thing in messages ("data 'x'"). */
bool bpv_const_eval(bpv_model *m, const bpv_ast *e, const char *what, bpv_shape *shape,
                    double **values, bpv_error **err);

/* Step selections (stepset.c). `total` is the model's step count, which
 * "last" and open ranges resolve to. */
/* The highest / lowest selected step (0 for none), for stopping early and
 * for "step past the end" errors. */
long bpv_step_set_max(const bpv_step_set *s, long total);
long bpv_step_set_min(const bpv_step_set *s, long total);
/* How many steps of 1..total the selection keeps (additive, for the
 * kept-steps limit). */
long bpv_step_set_count(const bpv_step_set *s, long total);
/* The first selected step >= step (LONG_MAX for none; step itself when it is
 * selected): the runner's per-step check (additive). */
long bpv_step_set_next(const bpv_step_set *s, long step, long total);

/* Checks a fn with `grad` (statement `stmt`) and compiles its body and
 * partials into m->customs[stmt] (fnprog.c). */
bool bpv_custom_make(bpv_model *m, const bpv_stmt *st, int stmt, bpv_error **err);

#endif
