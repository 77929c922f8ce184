// Prints the server's token ids for each line of stdin, encoded by the GGUF
// tokenizer of the model given as argv[1] (no BOS), one line of ids per line.
// Built and compared with tokenizer.py by check_tokenizer.sh.
#include <iostream>
#include <string>

#include "server/model/loader.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: tokenize MODEL.gguf < lines\n";
    return 2;
  }
  auto model = hr::LoadModel(argv[1]);
  if (!model.ok() || model->tokenizer == nullptr) {
    std::cerr << "error: cannot load a tokenizer from " << argv[1] << "\n";
    return 1;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    auto ids = model->tokenizer->Encode(line, /*add_bos=*/false);
    if (!ids.ok()) {
      std::cout << "error\n";
      continue;
    }
    for (size_t i = 0; i < ids->size(); ++i) std::cout << (i ? " " : "") << (*ids)[i];
    std::cout << "\n";
  }
  return 0;
}
