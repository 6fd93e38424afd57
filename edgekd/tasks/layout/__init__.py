"""Document layout detection: synthetic pages, COCO-format data, detector, FGD distillation, COCO AP."""
