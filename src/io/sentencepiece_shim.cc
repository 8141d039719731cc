// The one C++ file of srlm: srlm_tokenizer (io/tokenizer.h) over SentencePiece.
//
// Every SentencePiece call is checked: a failed util::Status and any C++
// exception become an srlm_status with a message; nothing escapes into C.

extern "C" {
#include "core/status.h"
}
#include "io/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

// Exported by libsentencepiece (src/common.h) but absent from the installed
// headers; used only to silence the trainer's INFO log.
namespace sentencepiece {
namespace logging {
int GetMinLogLevel();
void SetMinLogLevel(int v);
}  // namespace logging
}  // namespace sentencepiece

struct srlm_tokenizer {
    sentencepiece::SentencePieceProcessor sp;
    std::string path;
    int vocab = 0;
};

// Turn any exception from the body into a status, so no C++ exception ever
// crosses into C code.
template <typename F>
static srlm_status guarded(const char *what, F &&body) {
    try {
        return body();
    } catch (const std::bad_alloc &) {
        return SRLM_ERR(SRLM_FAILED, "%s: out of memory", what);
    } catch (const sentencepiece::util::Status &s) {  // SentencePiece's own throw-style API
        return SRLM_ERR(SRLM_FAILED, "%s: sentencepiece: %s", what, s.ToString().c_str());
    } catch (const std::exception &e) {
        return SRLM_ERR(SRLM_FAILED, "%s: %s", what, e.what());
    } catch (...) {
        return SRLM_ERR(SRLM_FAILED, "%s: unknown C++ exception", what);
    }
}

extern "C" srlm_status srlm_tokenizer_load(srlm_tokenizer **tok, const char *model_path) {
    *tok = nullptr;
    if (!model_path || !*model_path)
        return SRLM_ERR(SRLM_BAD_INPUT, "no tokenizer file given");
    return guarded("loading tokenizer", [&]() -> srlm_status {
        // Check the file ourselves first: SentencePiece's messages for a missing
        // file or a folder are less clear than "no such file".
        struct stat sb;
        if (stat(model_path, &sb) != 0)
            return SRLM_ERR(SRLM_BAD_INPUT, "tokenizer file '%s': %s", model_path, strerror(errno));
        if (!S_ISREG(sb.st_mode))
            return SRLM_ERR(SRLM_BAD_INPUT, "tokenizer file '%s' is not a regular file", model_path);

        std::unique_ptr<srlm_tokenizer> t(new srlm_tokenizer());
        sentencepiece::util::Status s = t->sp.Load(model_path);
        if (!s.ok()) {
            // A protobuf parse failure reads as a source location; say it plainly.
            std::string why = s.message();
            if (why.find("ParseFromArray") != std::string::npos)
                why = "it does not parse as a SentencePiece ModelProto";
            return SRLM_ERR(SRLM_BAD_INPUT,
                            "tokenizer file '%s' is not a valid SentencePiece model (%s)",
                            model_path, why.c_str());
        }
        t->vocab = t->sp.GetPieceSize();
        if (t->vocab <= 0) {  // protobuf accepts some garbage as an empty model
            return SRLM_ERR(SRLM_BAD_INPUT,
                            "tokenizer file '%s' is not a valid SentencePiece model (no pieces)",
                            model_path);
        }
        t->path = model_path;
        *tok = t.release();
        return SRLM_OK;
    });
}

extern "C" void srlm_tokenizer_free(srlm_tokenizer *tok) { delete tok; }

extern "C" int srlm_tokenizer_vocab_size(const srlm_tokenizer *tok) { return tok->vocab; }
extern "C" int srlm_tokenizer_bos(const srlm_tokenizer *tok) { return tok->sp.bos_id(); }
extern "C" int srlm_tokenizer_eos(const srlm_tokenizer *tok) { return tok->sp.eos_id(); }
extern "C" int srlm_tokenizer_unk(const srlm_tokenizer *tok) { return tok->sp.unk_id(); }
extern "C" int srlm_tokenizer_pad(const srlm_tokenizer *tok) { return tok->sp.pad_id(); }

extern "C" const char *srlm_tokenizer_piece(const srlm_tokenizer *tok, int id) {
    // SentencePiece does not range-check IdToPiece; we must.
    if (id < 0 || id >= tok->vocab) return "";
    return tok->sp.IdToPiece(id).c_str();
}

extern "C" int srlm_tokenizer_is_control(const srlm_tokenizer *tok, int id) {
    if (id < 0 || id >= tok->vocab) return 0;
    return tok->sp.IsControl(id) ? 1 : 0;
}

extern "C" srlm_status srlm_tokenizer_encode(const srlm_tokenizer *tok, const char *text,
                                             size_t len, int add_bos, int add_eos, int **ids,
                                             int *n_ids) {
    *ids = nullptr;
    *n_ids = 0;
    int bos = tok->sp.bos_id(), eos = tok->sp.eos_id();
    if (add_bos && bos < 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "tokenizer '%s' has no BOS id", tok->path.c_str());
    if (add_eos && eos < 0)
        return SRLM_ERR(SRLM_BAD_INPUT, "tokenizer '%s' has no EOS id", tok->path.c_str());
    return guarded("encoding text", [&]() -> srlm_status {
        std::vector<int> v;
        sentencepiece::util::Status s =
            tok->sp.Encode(absl::string_view(text ? text : "", text ? len : 0), &v);
        if (!s.ok())
            return SRLM_ERR(SRLM_BAD_INPUT, "encoding %zu bytes of text failed: %s", len,
                            s.ToString().c_str());
        size_t n = v.size() + (add_bos ? 1 : 0) + (add_eos ? 1 : 0);
        if (n > (size_t)0x7fffffff)
            return SRLM_ERR(SRLM_BAD_INPUT, "text of %zu bytes gives too many tokens", len);
        int *out = (int *)malloc((n ? n : 1) * sizeof(int));  // never malloc(0): NULL means failure
        if (!out) return SRLM_ERR(SRLM_FAILED, "out of memory encoding %zu tokens", n);
        size_t k = 0;
        if (add_bos) out[k++] = bos;
        for (int id : v) out[k++] = id;
        if (add_eos) out[k++] = eos;
        *ids = out;
        *n_ids = (int)n;
        return SRLM_OK;
    });
}

extern "C" srlm_status srlm_tokenizer_decode(const srlm_tokenizer *tok, const int *ids, int n_ids,
                                             char **text, size_t *len) {
    *text = nullptr;
    if (len) *len = 0;
    if (n_ids < 0) return SRLM_ERR(SRLM_BAD_INPUT, "decode: negative token count %d", n_ids);
    for (int i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= tok->vocab)
            return SRLM_ERR(SRLM_BAD_INPUT,
                            "token id %d at position %d is outside the vocabulary [0, %d)", ids[i],
                            i, tok->vocab);
    return guarded("decoding ids", [&]() -> srlm_status {
        std::vector<int> v(ids, ids + n_ids);
        std::string out;
        sentencepiece::util::Status s = tok->sp.Decode(v, &out);
        if (!s.ok())
            return SRLM_ERR(SRLM_BAD_INPUT, "decoding %d ids failed: %s", n_ids,
                            s.ToString().c_str());
        char *buf = (char *)malloc(out.size() + 1);
        if (!buf) return SRLM_ERR(SRLM_FAILED, "out of memory decoding %d ids", n_ids);
        memcpy(buf, out.data(), out.size());
        buf[out.size()] = '\0';
        *text = buf;
        if (len) *len = out.size();
        return SRLM_OK;
    });
}

extern "C" srlm_status srlm_tokenizer_train(const char *input_text_file, const char *model_prefix,
                                            const char *options) {
    return guarded("training tokenizer", [&]() -> srlm_status {
        struct stat sb;
        if (!input_text_file || stat(input_text_file, &sb) != 0 || !S_ISREG(sb.st_mode))
            return SRLM_ERR(SRLM_BAD_INPUT, "tokenizer training text '%s' is not a readable file",
                            input_text_file ? input_text_file : "(null)");
        if (!model_prefix || !*model_prefix)
            return SRLM_ERR(SRLM_BAD_INPUT, "tokenizer training: no model prefix given");

        // Options go through the map API so that paths with spaces survive.
        std::unordered_map<std::string, std::string> kw;
        std::istringstream in(options ? options : "");
        std::string opt;
        while (in >> opt) {
            if (opt.compare(0, 2, "--") != 0 || opt.size() == 2)
                return SRLM_ERR(SRLM_BAD_INPUT,
                                "tokenizer training option '%s' does not look like --name=value",
                                opt.c_str());
            size_t eq = opt.find('=');
            std::string key = opt.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
            std::string val = eq == std::string::npos ? "true" : opt.substr(eq + 1);
            if (key == "input" || key == "model_prefix")
                return SRLM_ERR(SRLM_BAD_INPUT,
                                "tokenizer training option --%s must not be in the option string "
                                "(it is an argument)", key.c_str());
            kw[key] = val;
        }
        kw["input"] = input_text_file;
        kw["model_prefix"] = model_prefix;

        int old_level = sentencepiece::logging::GetMinLogLevel();
        sentencepiece::logging::SetMinLogLevel(2);  // errors only; they also come back as status
        sentencepiece::util::Status s;
        try {
            s = sentencepiece::SentencePieceTrainer::Train(kw);
        } catch (...) {
            sentencepiece::logging::SetMinLogLevel(old_level);
            throw;
        }
        sentencepiece::logging::SetMinLogLevel(old_level);
        if (!s.ok())
            return SRLM_ERR(SRLM_BAD_INPUT, "training a tokenizer on '%s' into '%s.model' failed: %s",
                            input_text_file, model_prefix, s.ToString().c_str());
        return SRLM_OK;
    });
}
